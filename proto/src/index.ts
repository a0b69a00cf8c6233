/**
 * @berth/proto: the wire contract every Berth process agrees on — generated
 * message and service types, and the pure functions over them.
 */

export {
  assignOwners,
  type PlanShardMapInput,
  planShardMap,
  rendezvousScore,
} from "./assignment.js";
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
  type ClusterMismatch,
  callerClusterId,
  clusterClientOptions,
  clusterIdClientInterceptor,
  clusterIdProblem,
  clusterIdServerInterceptor,
  INTERNAL_PATH_PREFIX,
  MAX_CLUSTER_ID_LENGTH,
} from "./cluster-id.js";
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
export { PROTO_ROOT, SERVICE_PROTO_FILES } from "./proto-files.js";
export { berthFileDescriptors, berthReflectionPackage } from "./reflection.js";
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
export {
  FileShardMapSource,
  type FileShardMapSourceOptions,
  type FileShardMapSourceStats,
  type ShardMapSource,
  StaticShardMapSource,
  shardMapProblem,
  writeShardMapFile,
} from "./shard-map-source.js";
export { type DigestedSpec, digestedSpecOf, SpecDigest } from "./spec-digest.js";
export {
  ERROR_DOMAIN,
  ERROR_REASONS,
  type ErrorReason,
  type FieldViolation,
  isErrorReason,
  type ParsedRichStatus,
  parseRichStatus,
  type RichStatusDetail,
  RichStatusError,
  richStatus,
  STATUS_DETAILS_KEY,
  TYPE_URLS,
} from "./status.js";
export { durationOf, timestampMs, timestampMsCeil, timestampOf } from "./timestamp.js";
