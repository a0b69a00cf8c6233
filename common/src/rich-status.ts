/**
 * The gRPC rich error model over grpc-js metadata: {@link richStatus} builds a failure
 * whose `grpc-status-details-bin` trailer carries a google.rpc.Status with an ErrorInfo
 * (and RetryInfo, BadRequest when given), {@link parseRichStatus} reads one back. The
 * reasons, domain and type URLs are in @berth/proto (error-model).
 */

import {
  BadRequest,
  durationMs,
  durationOf,
  ERROR_DOMAIN,
  ErrorInfo,
  type ErrorReason,
  type FieldViolation,
  RetryInfo,
  RpcStatus,
  STATUS_DETAILS_KEY,
  TYPE_URLS,
} from "@berth/proto";
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";

type Any = RpcStatus["details"][number];

/** The structured part of a rich status. */
export interface RichStatusDetail {
  /** Stable reason clients switch on. */
  reason: ErrorReason;
  /** ErrorInfo metadata, e.g. `{ shard: "7", epoch: "3", owner: "worker-1" }`. */
  metadata?: Record<string, string>;
  /** When set, a RetryInfo: how long the client should wait before retrying (≥ 0). */
  retryDelayMs?: number;
  /** When non-empty, a BadRequest listing the violated fields. */
  fieldViolations?: readonly FieldViolation[];
}

/**
 * Thrown (or handed to a grpc-js callback) when a Berth call fails with a rich
 * status; shaped as a grpc-js `ServiceError`.
 */
export class RichStatusError extends Error implements ServiceError {
  override readonly name = "RichStatusError";

  /**
   * @param code the gRPC status code
   * @param details the status message sent to the client
   * @param metadata trailers, including `grpc-status-details-bin`
   */
  constructor(
    readonly code: status,
    readonly details: string,
    readonly metadata: Metadata,
  ) {
    super(details);
  }
}

/**
 * Builds a failure for a grpc-js unary callback (`callback(richStatus(...))`) or
 * to throw: `{ code, details: message, metadata }` where the metadata carries
 * `grpc-status-details-bin`, an encoded google.rpc.Status holding an Any-packed
 * ErrorInfo (domain "berth.dev"), then RetryInfo and BadRequest when given.
 *
 * @param code the gRPC status code (not OK)
 * @param message the status message, for people
 * @param detail reason, metadata, retry delay and field violations
 * @returns an Error usable as a grpc-js ServiceError
 * @throws RangeError when code is OK or `retryDelayMs` is negative or not finite
 */
export function richStatus(
  code: status,
  message: string,
  detail: RichStatusDetail,
): RichStatusError {
  if (code === status.OK) throw new RangeError("a rich status must not have code OK");
  const details: Any[] = [
    {
      typeUrl: TYPE_URLS.errorInfo,
      value: Buffer.from(
        ErrorInfo.encode({
          reason: detail.reason,
          domain: ERROR_DOMAIN,
          metadata: { ...detail.metadata },
        }).finish(),
      ),
    },
  ];
  if (detail.retryDelayMs !== undefined) {
    if (!Number.isFinite(detail.retryDelayMs) || detail.retryDelayMs < 0) {
      throw new RangeError(
        `retry delay must be a non-negative number of milliseconds, got ${String(detail.retryDelayMs)}`,
      );
    }
    details.push({
      typeUrl: TYPE_URLS.retryInfo,
      value: Buffer.from(
        RetryInfo.encode({ retryDelay: durationOf(detail.retryDelayMs) }).finish(),
      ),
    });
  }
  if (detail.fieldViolations !== undefined && detail.fieldViolations.length > 0) {
    details.push({
      typeUrl: TYPE_URLS.badRequest,
      value: Buffer.from(
        BadRequest.encode({
          fieldViolations: detail.fieldViolations.map((v) => ({
            field: v.field,
            description: v.description,
          })),
        }).finish(),
      ),
    });
  }
  const metadata = new Metadata();
  metadata.set(
    STATUS_DETAILS_KEY,
    Buffer.from(RpcStatus.encode({ code, message, details }).finish()),
  );
  return new RichStatusError(code, message, metadata);
}

/** What {@link parseRichStatus} reads from a failure. */
export interface ParsedRichStatus {
  /** The gRPC status code (UNKNOWN, 2, for errors that carry none). */
  code: number;
  /** The status message (`details` of a ServiceError), else the error's message. */
  message: string;
  /** ErrorInfo reason, when the failure carried one. */
  reason?: string;
  /** ErrorInfo domain, when the failure carried one. */
  domain?: string;
  /** ErrorInfo metadata; empty when none. */
  metadata: Record<string, string>;
  /** RetryInfo delay in milliseconds, when the failure carried one. */
  retryDelayMs?: number;
  /** BadRequest field violations, when the failure carried any. */
  fieldViolations?: FieldViolation[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function decodeStatus(raw: unknown): RpcStatus | undefined {
  if (!isRecord(raw) || typeof raw.get !== "function") return undefined;
  const values: unknown = (raw as unknown as Metadata).get(STATUS_DETAILS_KEY);
  const first = Array.isArray(values) ? values[0] : undefined;
  if (!(first instanceof Uint8Array)) return undefined;
  try {
    return RpcStatus.decode(first);
  } catch {
    // Details come from the peer: garbage there must not turn a clean status
    // (code and message, which stand on their own) into a crash.
    return undefined;
  }
}

/**
 * Reads a failure built by {@link richStatus} back, from a grpc-js client
 * `ServiceError` (the details come from `err.metadata.get('grpc-status-details-bin')`)
 * or from a {@link RichStatusError} directly. Details are used only when they decode
 * and their Status code matches the call's code; unknown detail types are skipped.
 * Any other thrown value yields code UNKNOWN and its message.
 *
 * @param err whatever a call failed with
 * @returns code, message and whatever rich details were present
 */
export function parseRichStatus(err: unknown): ParsedRichStatus {
  if (!isRecord(err)) return { code: status.UNKNOWN, message: String(err), metadata: {} };
  const code = typeof err.code === "number" ? err.code : status.UNKNOWN;
  const message =
    typeof err.details === "string"
      ? err.details
      : typeof err.message === "string"
        ? err.message
        : String(err);
  const parsed: ParsedRichStatus = { code, message, metadata: {} };
  const decoded = decodeStatus(err.metadata);
  if (decoded === undefined || decoded.code !== code) return parsed;
  for (const any of decoded.details) {
    try {
      if (any.typeUrl === TYPE_URLS.errorInfo && parsed.reason === undefined) {
        const info = ErrorInfo.decode(any.value);
        parsed.reason = info.reason;
        parsed.domain = info.domain;
        parsed.metadata = { ...info.metadata };
      } else if (any.typeUrl === TYPE_URLS.retryInfo && parsed.retryDelayMs === undefined) {
        const delay = RetryInfo.decode(any.value).retryDelay;
        if (delay !== undefined) parsed.retryDelayMs = durationMs(delay);
      } else if (any.typeUrl === TYPE_URLS.badRequest && parsed.fieldViolations === undefined) {
        parsed.fieldViolations = BadRequest.decode(any.value).fieldViolations.map((v) => ({
          field: v.field,
          description: v.description,
        }));
      }
    } catch {
      // An undecodable detail from the peer is skipped; the others still count.
    }
  }
  return parsed;
}
