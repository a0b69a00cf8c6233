// What the Cassandra end-to-end tests share: whether they can run here (Java 17), a
// fresh keyspace name per cluster, the journal URL, and a direct reader of the journal.
import { randomUUID } from "node:crypto";
import { CassandraJournal, parseCassandraJournalUrl } from "@berth/worker";
import { javaAvailable } from "../cassandra/cassandra-node.js";

/** Why the Cassandra tests cannot run here, or undefined when they can. */
export function cassandraSkipReason(file: string): string | undefined {
  if (javaAvailable()) return undefined;
  const reason =
    "java is not on PATH (Java 17 is needed to start a Cassandra node; see the README's prerequisites)";
  console.log(`# skipping ${file}: ${reason}`);
  return reason;
}

const runId = randomUUID().replaceAll("-", "").slice(0, 8);
let counter = 0;

/** A keyspace name no other run or cluster of this run uses. */
export function freshKeyspace(label: string): string {
  return `berth_${label}_${runId}_${++counter}`;
}

/** `cassandra://<contactPoint>/<keyspace>` with the options local tests use. */
export function cassandraJournalUrl(contactPoint: string, keyspace: string): string {
  // A generous request timeout: two cores serve a Cassandra node, a gateway and the workers.
  return `cassandra://${contactPoint}/${keyspace}?timeoutMs=10000`;
}

/** Opens the journal a cassandra:// URL names, to read what the workers wrote. */
export function openCassandraJournal(url: string): Promise<CassandraJournal> {
  return CassandraJournal.connect(parseCassandraJournalUrl(url));
}
