/**
 * The gossip read side: a replica of every pool's public counters (higher version
 * wins), the Gossiper that spreads them between nodes, and the GossipService
 * handlers. Workers publish the pools they own; gateways are read-only replicas.
 */

export {
  type GossipObserver,
  type GossipServiceOptions,
  gossipServiceHandlers,
} from "./gossip-service.js";
export { Gossiper, type GossiperOptions } from "./gossiper.js";
export { chunkBySize, encodedSizeBound, MAX_GOSSIP_MESSAGE_BYTES } from "./message-size.js";
export { decodePageToken, encodePageToken, InvalidPageTokenError } from "./page-token.js";
export {
  type ApplyOptions,
  type AvailabilityPage,
  type AvailabilityQuery,
  type AvailablePool,
  InvalidPageSizeError,
  Replica,
  type ReplicaEntry,
  type ReplicaOptions,
} from "./replica.js";
