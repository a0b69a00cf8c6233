// Local mode: the whole cluster as supervised processes on one machine (`npm start`).
export * from "./local-cluster.js";
export * from "./ports.js";
export * from "./shard-map-ops.js";
export * from "./shard-watch.js";
