/**
 * @berth/proto: the wire contract every Berth process agrees on — generated
 * messages, framework-agnostic service definitions (`*ServiceDefinition`), and the pure
 * functions over them. Pure: importing it loads no `node:*` module and no gRPC library
 * (proto/src/purity.int.test.ts checks); the grpc-js bindings, the rich-status codec
 * and the file-backed ShardMap source are in @berth/common.
 */

export {
  assignOwners,
  type PlanShardMapInput,
  planShardMap,
  rendezvousScore,
} from "./assignment.js";
export { type BackoffJitter, type BackoffPolicy, backoffDelayMs } from "./backoff.js";
export {
  DEFAULT_PAGE_SIZE,
  MAX_CALL_TOKEN_LENGTH,
  MAX_CAPACITY,
  MAX_FORWARD_BATCH,
  MAX_FORWARD_BYTES,
  MAX_LABELS,
  MAX_MIN_UNITS,
  MAX_NANOS,
  MAX_PAGE_SIZE,
  MAX_PAGE_TOKEN_LENGTH,
  MAX_REQUEST_ID_LENGTH,
  MAX_TIMESTAMP_SECONDS,
  MAX_UNITS,
  MIN_TIMESTAMP_SECONDS,
  MIN_UNITS,
} from "./bounds.js";
export {
  CLUSTER_ID_HEADER,
  clusterIdProblem,
  INTERNAL_PATH_PREFIX,
  MAX_CLUSTER_ID_LENGTH,
} from "./cluster-id.js";
export {
  ERROR_DOMAIN,
  ERROR_REASONS,
  type ErrorReason,
  type FieldViolation,
  isErrorReason,
  STATUS_DETAILS_KEY,
  TYPE_URLS,
} from "./error-model.js";
export { berthFileDescriptors } from "./file-descriptors.js";
export * as internal from "./gen/berth/internal/v1/worker.js";
export {
  Member,
  ShardAssignment,
  ShardMap,
  ShardState,
  shardStateFromJSON,
  shardStateToJSON,
} from "./gen/berth/internal/v1/worker.js";
export * as v1 from "./gen/berth/v1/capacity.js";
/** google.rpc error details: what a rich status packs (see error-model). */
export { BadRequest, ErrorInfo, RetryInfo } from "./gen/google/rpc/error_details.js";
/** google.rpc.Status: how a Forward reply carries a failed command's status and details. */
export { Status as RpcStatus } from "./gen/google/rpc/status.js";
export {
  formatLabelSelector,
  type LabelRequirement,
  type LabelSelector,
  LabelSelectorSyntaxError,
  labelKeyProblem,
  labelValueProblem,
  MAX_LABEL_SELECTOR_LENGTH,
  matchesLabels,
  parseLabelSelector,
} from "./label-selector.js";
export {
  assertPoolId,
  InvalidPoolIdError,
  MAX_NAME_LENGTH,
  MAX_NAMESPACE_LENGTH,
  MAX_POOL_ID_LENGTH,
  poolIdProblem,
  splitPoolId,
} from "./pool-id.js";
export { RepeatedFieldOne } from "./repeated-field.js";
export {
  type DecodedReservationId,
  decodeReservationId,
  encodeLegacyReservationId,
  encodeReservationId,
  isReservationSecret,
  LEGACY_RESERVATION_ID_VERSION,
  MAX_RESERVATION_ID_LENGTH,
  MalformedReservationIdError,
  RESERVATION_ID_VERSION,
  RESERVATION_SECRET_BYTES,
  RESERVATION_SECRET_LENGTH,
} from "./reservation-id.js";
export { compareTimestamps, parseRfc3339, type Timestamp } from "./rfc3339.js";
export { assertShardCount, DEFAULT_SHARD_COUNT, murmur3, shardOf } from "./shard-hash.js";
export { type ShardMapSource, StaticShardMapSource, shardMapProblem } from "./shard-map-source.js";
export {
  durationMs,
  durationOf,
  timestampMs,
  timestampMsCeil,
  timestampOf,
} from "./timestamp.js";
