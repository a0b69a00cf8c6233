// Bounds of the wire contract, stated once. Each mirrors a bound documented in the
// .proto files; validation everywhere (gateway, worker, CRD schema, local manifests)
// takes its numbers from here.

/** Largest pool capacity: the int32 range of `PoolSpec.capacity` / `Pool.capacity`. */
export const MAX_CAPACITY = 2_147_483_647;

/** Seconds of 0001-01-01T00:00:00Z, the first instant RFC 3339 (and Timestamp) can name. */
export const MIN_TIMESTAMP_SECONDS = -62_135_596_800;

/** Seconds of 9999-12-31T23:59:59Z, the last whole second RFC 3339 can name. */
export const MAX_TIMESTAMP_SECONDS = 253_402_300_799;
