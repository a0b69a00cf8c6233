// The acceptance scenarios of issue 2 on the Cassandra journal: a real Cassandra node
// (the run's shared one, or one started for this file), a fresh keyspace for every
// cluster the scenarios start. Skipped, with the reason printed, without Java.
import { after, before, describe } from "node:test";
import { startAcceptanceCluster } from "./acceptance-cluster.js";
import { acceptanceScenarios } from "./acceptance-scenarios.js";
import {
  cassandraJournalUrl,
  cassandraSkipReason,
  freshKeyspace,
  type TestCassandra,
  testCassandra,
} from "./cassandra-support.js";

const skip = cassandraSkipReason("the acceptance scenarios on Cassandra");

describe("acceptance on a real Cassandra node", { skip }, () => {
  let node: TestCassandra | undefined;
  before(async () => {
    node = await testCassandra();
  });
  after(async () => {
    await node?.release();
  });

  acceptanceScenarios("cassandra", () => {
    if (node === undefined) throw new Error("the Cassandra node did not start");
    return startAcceptanceCluster({
      journal: cassandraJournalUrl(node.contactPoint, freshKeyspace("acceptance")),
    });
  });
});
