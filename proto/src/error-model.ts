/**
 * The constants of Berth's gRPC rich error model: every failure carries a
 * `google.rpc.ErrorInfo` with a stable {@link ErrorReason} in domain "berth.dev",
 * retryable failures a `google.rpc.RetryInfo`, bad input a `google.rpc.BadRequest`,
 * all packed in a google.rpc.Status sent in the {@link STATUS_DETAILS_KEY} trailer.
 * The codec over grpc-js metadata (richStatus, parseRichStatus) is in @berth/common.
 */

/** The ErrorInfo domain of every error Berth produces. */
export const ERROR_DOMAIN = "berth.dev";

/** The binary trailer that carries the encoded google.rpc.Status. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

/** Every stable ErrorInfo reason Berth produces; clients may switch on them. */
export const ERROR_REASONS = [
  "INVALID_FIELD",
  "POOL_NOT_FOUND",
  "RESERVATION_NOT_FOUND",
  "INSUFFICIENT_CAPACITY",
  "POOL_CLOSED",
  "REQUEST_ID_REUSED",
  "NOT_OWNER",
  "SHARD_RECOVERING",
  "JOURNAL_UNAVAILABLE",
  "OWNER_UNAVAILABLE",
  "NO_OWNER",
  "WRITES_FENCED",
  "INTERNAL_ERROR",
  "WINDOW_ENDED",
  "CLUSTER_MISMATCH",
] as const;

/** A stable ErrorInfo reason: one of {@link ERROR_REASONS}. */
export type ErrorReason = (typeof ERROR_REASONS)[number];

/** Type URLs of the packed details (`type.googleapis.com/<full message name>`). */
export const TYPE_URLS = {
  errorInfo: "type.googleapis.com/google.rpc.ErrorInfo",
  retryInfo: "type.googleapis.com/google.rpc.RetryInfo",
  badRequest: "type.googleapis.com/google.rpc.BadRequest",
} as const;

/**
 * Whether a string is one of Berth's {@link ErrorReason}s.
 *
 * @param reason any string, e.g. a parsed ErrorInfo reason
 */
export function isErrorReason(reason: string): reason is ErrorReason {
  return (ERROR_REASONS as readonly string[]).includes(reason);
}

/**
 * One violated field of a request (google.rpc.BadRequest.FieldViolation): what the
 * gateway's and the worker's validation return and INVALID_ARGUMENT carries.
 */
export interface FieldViolation {
  /** Path of the field in the request, proto (snake_case) names joined by ".", e.g. `request.units`. */
  readonly field: string;
  /** What is wrong and what is allowed, for people. */
  readonly description: string;
}
