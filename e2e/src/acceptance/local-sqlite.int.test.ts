// The acceptance scenarios of issue 2 on the default journal of local mode: one
// SQLite file shared by the worker processes.
import { startAcceptanceCluster } from "./acceptance-cluster.js";
import { acceptanceScenarios } from "./acceptance-scenarios.js";

acceptanceScenarios("sqlite", () => startAcceptanceCluster());
