// The acceptance scenarios of issue 2 on the Cassandra journal: one real Cassandra
// node for this file (started in `before`, stopped in `after`), a fresh keyspace for
// every cluster the scenarios start. Skipped, with the reason printed, without Java.
import { after, before, describe } from "node:test";
import { type CassandraNode, startCassandra } from "../cassandra/cassandra-node.js";
import { startAcceptanceCluster } from "./acceptance-cluster.js";
import { acceptanceScenarios } from "./acceptance-scenarios.js";
import { cassandraJournalUrl, cassandraSkipReason, freshKeyspace } from "./cassandra-support.js";

const skip = cassandraSkipReason("the acceptance scenarios on Cassandra");

describe("acceptance on a real Cassandra node", { skip }, () => {
  let node: CassandraNode | undefined;
  before(async () => {
    node = await startCassandra({ log: (line) => process.stderr.write(`[cassandra] ${line}\n`) });
  });
  after(async () => {
    await node?.stop();
  });

  acceptanceScenarios("cassandra", () => {
    if (node === undefined) throw new Error("the Cassandra node did not start");
    return startAcceptanceCluster({
      journal: cassandraJournalUrl(node.contactPoint, freshKeyspace("acceptance")),
    });
  });
});
