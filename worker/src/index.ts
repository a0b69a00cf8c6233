/**
 * @berth/worker: the pool entity, its journal, the gossip read side, and the
 * shared process plumbing (logging, metrics, health) that gateways reuse.
 */
export * from "./adapters/observability.js";
