/**
 * The cluster id every internal call carries, so that two Berth clusters on one
 * machine (or one network) never mix: the caller sends its id in the
 * {@link CLUSTER_ID_HEADER} metadata entry and a server refuses an internal call
 * ({@link INTERNAL_PATH_PREFIX}) whose id is not its own with PERMISSION_DENIED, reason
 * CLUSTER_MISMATCH. The empty id is "no cluster id": such a node accepts only callers
 * that send none. The grpc-js interceptors that do this are in @berth/common.
 */

/** The metadata key of the caller's cluster id. */
export const CLUSTER_ID_HEADER = "berth-cluster-id";

/** Longest cluster id. */
export const MAX_CLUSTER_ID_LENGTH = 64;

/** Calls under this path prefix are internal and checked; public ones (berth.v1) are not. */
export const INTERNAL_PATH_PREFIX = "/berth.internal.v1.";

const CLUSTER_ID = /^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$/;

/**
 * Why `id` is not a valid cluster id, or undefined when it is: "" (none) or 1–64
 * lowercase letters, digits and inner dashes.
 */
export function clusterIdProblem(id: string): string | undefined {
  if (id === "" || CLUSTER_ID.test(id)) return undefined;
  return `a cluster id is 1-${MAX_CLUSTER_ID_LENGTH} lowercase letters, digits and inner '-', got ${JSON.stringify(id.slice(0, MAX_CLUSTER_ID_LENGTH + 1))}`;
}
