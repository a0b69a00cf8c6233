/**
 * @berth/common: what every Berth process shares, one layer below worker, gateway and
 * operator — structured logging, the metrics registry, the /metrics, /healthz and
 * /readyz endpoints, host:port parsing, the grpc-js bindings of Berth's services, the
 * rich-status codec, cluster-id interceptors, server reflection, the credentials of
 * internal gRPC servers and clients (plaintext or mutual TLS), the file-backed ShardMap
 * source and its atomic writer, the address file (`--address-file`), the V8 flags
 * server processes set on themselves, and cluster participation: the gossip read side
 * (Replica, Gossiper, GossipService). It depends only on @berth/proto; no pool entity,
 * journal or routing lives here.
 */

export * from "./address-file.js";
export * from "./atomic-file.js";
export * from "./cluster-guard.js";
export * from "./cluster-id.js";
export * from "./file-shard-map.js";
export * from "./gossip/index.js";
export * from "./grpc-server.js";
export * from "./grpc-server-metrics.js";
export * from "./grpc-services.js";
export * from "./internal-tls.js";
export * from "./observability.js";
export * from "./reflection.js";
export * from "./rich-status.js";
export * from "./server-v8-flags.js";
export * from "./spec-digest.js";
export * from "./usage-error.js";
