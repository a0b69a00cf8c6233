// Bounds of the wire contract, stated once. Each mirrors a bound documented in the
// .proto files; validation everywhere (gateway, worker, decider, CRD schema, local
// manifests) takes its numbers from here. (Identifier lengths live with their
// codecs: pool-id.ts, reservation-id.ts, label-selector.ts, cluster-id.ts.)

/** Largest pool capacity: the int32 range of `PoolSpec.capacity` / `Pool.capacity`. */
export const MAX_CAPACITY = 2_147_483_647;

/** Fewest units one Reserve may take. */
export const MIN_UNITS = 1;
/** Most units one Reserve may take. */
export const MAX_UNITS = 1_000_000;
/** Longest Reserve `request_id`, in characters. */
export const MAX_REQUEST_ID_LENGTH = 128;
/** Longest internal `call_token` (the gateway's per-call idempotency token), in characters. */
export const MAX_CALL_TOKEN_LENGTH = 64;
/** Most labels on one pool. */
export const MAX_LABELS = 256;

/** Largest GetAvailability `min_units`. */
export const MAX_MIN_UNITS = 1_000_000;
/** Largest GetAvailability `page_size`. */
export const MAX_PAGE_SIZE = 1000;
/** GetAvailability `page_size` used when the request leaves it 0. */
export const DEFAULT_PAGE_SIZE = 100;
/** Longest `page_token` accepted before decoding (a base64url pool id is at most 424). */
export const MAX_PAGE_TOKEN_LENGTH = 512;

/** Seconds of 0001-01-01T00:00:00Z, the first instant RFC 3339 (and Timestamp) can name. */
export const MIN_TIMESTAMP_SECONDS = -62_135_596_800;
/** Seconds of 9999-12-31T23:59:59Z, the last whole second RFC 3339 can name. */
export const MAX_TIMESTAMP_SECONDS = 253_402_300_799;
/** Largest `Timestamp.nanos`. */
export const MAX_NANOS = 999_999_999;

/** Most commands (or replies) in one internal Forward message. */
export const MAX_FORWARD_BATCH = 1024;
/** About the most bytes of one internal Forward message (one oversized item still goes alone). */
export const MAX_FORWARD_BYTES = 1024 * 1024;
