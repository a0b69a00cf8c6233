// The ONE place where a worker failure becomes a gRPC status.

import { randomUUID } from "node:crypto";
import { richStatus } from "@berth/common";
import type { FieldViolation } from "@berth/proto";
import { Metadata, status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { FencedError, JournalUnavailableError } from "../journal/errors.js";
import type { CommandOutcome } from "../ownership/command-outcome.js";

/** Retry hint sent with JOURNAL_UNAVAILABLE. */
export const JOURNAL_RETRY_DELAY_MS = 100;

/** Everything a WorkerService call can fail with. */
export type Failure =
  | (Exclude<CommandOutcome, { readonly kind: "ok" } | { readonly kind: "view" }> & {
      /** The pool the call was about, named in NOT_FOUND's ErrorInfo metadata. */
      readonly pool?: string;
    })
  | { readonly kind: "invalid_field"; readonly violation: FieldViolation }
  | { readonly kind: "pool_not_found"; readonly pool: string }
  | { readonly kind: "error"; readonly error: unknown };

/** What a grpc-js unary callback takes as its error. */
export type GrpcError = Error & { code: status; details: string; metadata: Metadata };

/**
 * Maps a failure to its gRPC status with the standard rich details (ErrorInfo reason,
 * RetryInfo, BadRequest field violations):
 *
 * | failure | code | reason |
 * | --- | --- | --- |
 * | malformed request field | INVALID_ARGUMENT | INVALID_FIELD (metadata `field`) |
 * | command refused by the decider as malformed | INVALID_ARGUMENT | INVALID_FIELD |
 * | request id reused with other units | INVALID_ARGUMENT | REQUEST_ID_REUSED (field `request_id`) |
 * | pool never configured | NOT_FOUND | POOL_NOT_FOUND |
 * | reservation unknown in its pool, or its id's secret does not match | NOT_FOUND | RESERVATION_NOT_FOUND (one answer for both) |
 * | not enough capacity | FAILED_PRECONDITION | INSUFFICIENT_CAPACITY (metadata `available`) |
 * | pool closed | FAILED_PRECONDITION | POOL_CLOSED |
 * | pool's window has ended | FAILED_PRECONDITION | WINDOW_ENDED (metadata `windowEnd`, RFC 3339) |
 * | shard not served here | FAILED_PRECONDITION | NOT_OWNER (metadata `shard`, `epoch`, `owner`, `ownerAddress`) |
 * | shard recovering / map unknown | UNAVAILABLE + RetryInfo | SHARD_RECOVERING |
 * | journal unavailable, outcome unknown | UNAVAILABLE + RetryInfo | JOURNAL_UNAVAILABLE |
 * | worker shutting down / overloaded | UNAVAILABLE + RetryInfo | OWNER_UNAVAILABLE |
 * | deadline passed before the command ran | DEADLINE_EXCEEDED | — |
 * | bug, corrupt journal | INTERNAL | — (details logged, not sent) |
 *
 * REQUEST_ID_REUSED is INVALID_ARGUMENT rather than ALREADY_EXISTS or
 * FAILED_PRECONDITION: the caller's request is wrong (one request id, two different
 * requests) and only a new request id fixes it; retrying never helps.
 */
export function toGrpcError(failure: Failure, logger: Logger): GrpcError {
  switch (failure.kind) {
    case "invalid_field":
      return invalidField(failure.violation);
    case "invalid":
      return invalidField({ field: failure.error.field, description: failure.error.message });
    case "pool_not_found":
      return rich(
        status.NOT_FOUND,
        `pool ${failure.pool} does not exist (it has never been configured)`,
        {
          reason: "POOL_NOT_FOUND",
          metadata: { pool: failure.pool },
        },
      );
    case "rejected": {
      const r = failure.rejection;
      switch (r.code) {
        case "POOL_NOT_FOUND":
        case "RESERVATION_NOT_FOUND":
          // The pool is the caller's own input (it is in the id): naming it tells a
          // guesser nothing, and a forged id gets the same metadata as an unknown one.
          return rich(status.NOT_FOUND, r.message, {
            reason: r.code,
            ...(failure.pool === undefined ? {} : { metadata: { pool: failure.pool } }),
          });
        case "INSUFFICIENT_CAPACITY":
          return rich(status.FAILED_PRECONDITION, r.message, {
            reason: r.code,
            metadata: { available: String(r.available) },
          });
        case "POOL_CLOSED":
          return rich(status.FAILED_PRECONDITION, r.message, { reason: r.code });
        case "WINDOW_ENDED":
          return rich(status.FAILED_PRECONDITION, r.message, {
            reason: r.code,
            metadata: { windowEnd: new Date(r.windowEndMs).toISOString() },
          });
        case "REQUEST_ID_REUSED":
          return rich(status.INVALID_ARGUMENT, r.message, {
            reason: r.code,
            metadata: { field: "request_id" },
            fieldViolations: [{ field: "request_id", description: r.message }],
          });
      }
      break;
    }
    case "not_owner": {
      const metadata: Record<string, string> = {
        shard: String(failure.shard),
        epoch: String(failure.epoch),
      };
      if (failure.owner !== undefined) metadata.owner = failure.owner;
      if (failure.ownerAddress !== undefined) metadata.ownerAddress = failure.ownerAddress;
      return rich(status.FAILED_PRECONDITION, failure.message, {
        reason: "NOT_OWNER",
        metadata,
        ...(failure.retryDelayMs === undefined ? {} : { retryDelayMs: failure.retryDelayMs }),
      });
    }
    case "unavailable":
      return rich(status.UNAVAILABLE, failure.message, {
        reason: failure.reason,
        retryDelayMs: failure.retryDelayMs,
      });
    case "deadline_exceeded":
      return plain(status.DEADLINE_EXCEEDED, failure.message);
    case "internal":
      return internalError(failure.message);
    case "error": {
      const e = failure.error;
      if (e instanceof JournalUnavailableError) {
        return rich(status.UNAVAILABLE, "the journal is unavailable", {
          reason: "JOURNAL_UNAVAILABLE",
          retryDelayMs: JOURNAL_RETRY_DELAY_MS,
        });
      }
      if (e instanceof FencedError) {
        return rich(status.FAILED_PRECONDITION, e.message, {
          reason: "NOT_OWNER",
          metadata: { epoch: String(e.fenceEpoch) },
        });
      }
      const errorId = randomUUID();
      logger.error({ err: e, errorId }, "unexpected error in a WorkerService call");
      return internalError(`internal error ${errorId} (logged by the worker)`, errorId);
    }
  }
  const errorId = randomUUID();
  logger.error({ failure, errorId }, "unmapped failure");
  return internalError(`internal error ${errorId} (logged by the worker)`, errorId);
}

/**
 * A worker's own INTERNAL answer carries ErrorInfo INTERNAL_ERROR, which tells the
 * gateway it is a definitive answer from the owner, not a transport failure to retry.
 */
function internalError(message: string, errorId?: string): GrpcError {
  return rich(status.INTERNAL, message, {
    reason: "INTERNAL_ERROR",
    ...(errorId === undefined ? {} : { metadata: { errorId } }),
  });
}

function invalidField(v: FieldViolation): GrpcError {
  return rich(status.INVALID_ARGUMENT, `${v.field}: ${v.description}`, {
    reason: "INVALID_FIELD",
    metadata: { field: v.field },
    fieldViolations: [{ field: v.field, description: v.description }],
  });
}

function rich(code: status, message: string, detail: Parameters<typeof richStatus>[2]): GrpcError {
  return richStatus(code, message, detail) as GrpcError;
}

function plain(code: status, message: string): GrpcError {
  return Object.assign(new Error(message), { code, details: message, metadata: new Metadata() });
}
