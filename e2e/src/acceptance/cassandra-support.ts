// What the Cassandra end-to-end tests share: whether they can run here (Java 17), the
// node to run against, a fresh keyspace name per cluster, the journal URL, and a direct
// reader of the journal.
import { randomUUID } from "node:crypto";
import {
  CASSANDRA_LOCAL_DATA_CENTER,
  javaAvailable,
  startCassandra,
} from "@berth/testing/cassandra";
import { CassandraJournal, parseCassandraJournalUrl } from "@berth/worker";
import cassandra from "cassandra-driver";

/** Why the Cassandra tests cannot run here, or undefined when they can. */
export function cassandraSkipReason(file: string): string | undefined {
  if (process.env.BERTH_CASSANDRA || javaAvailable()) return undefined;
  const reason =
    "java is not on PATH (Java 17 is needed to start a Cassandra node; see the README's prerequisites)";
  console.log(`# skipping ${file}: ${reason}`);
  return reason;
}

const runId = randomUUID().replaceAll("-", "").slice(0, 8);
let counter = 0;
const handedOut: string[] = [];

/** A keyspace name no other run or cluster of this run uses. */
export function freshKeyspace(label: string): string {
  const keyspace = `berth_${label}_${runId}_${++counter}`;
  handedOut.push(keyspace);
  return keyspace;
}

/** The Cassandra node a test file runs against. */
export interface TestCassandra {
  /** `host:port` of its CQL port. */
  readonly contactPoint: string;
  /** Stops the file's own node, or drops from a shared one the keyspaces of this file. */
  release(): Promise<void>;
}

/**
 * The node `BERTH_CASSANDRA=host:port` names (npm test starts one per run and names it
 * there for the files with the `cassandra` token), or without it a node started for this
 * file. On a shared node each file's clusters use their own {@link freshKeyspace}, which
 * `release()` drops again.
 */
export async function testCassandra(): Promise<TestCassandra> {
  const given = process.env.BERTH_CASSANDRA;
  if (!given) {
    const node = await startCassandra({
      log: (line) => process.stderr.write(`[cassandra] ${line}\n`),
    });
    return { contactPoint: node.contactPoint, release: () => node.stop() };
  }
  return {
    contactPoint: given,
    async release() {
      const client = new cassandra.Client({
        contactPoints: [given],
        localDataCenter: CASSANDRA_LOCAL_DATA_CENTER,
      });
      try {
        for (const keyspace of handedOut.splice(0)) {
          // A schema change waits for schema agreement: on a busy machine that takes
          // longer than the driver's 12 s default read timeout.
          await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { readTimeout: 120_000 });
        }
      } finally {
        await client.shutdown();
      }
    },
  };
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
