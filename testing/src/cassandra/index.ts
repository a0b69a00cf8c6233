// A real Cassandra node for tests and benchmarks (see README.md here).
export * from "./cassandra-node.js";
