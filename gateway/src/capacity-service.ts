/**
 * The grpc-js handlers of the public `berth.v1.CapacityService`: validate, then
 * route writes (and GetPool) to the pool's owner through the {@link Router}, and
 * answer GetAvailability from this gateway's own gossip replica.
 */
import { randomUUID } from "node:crypto";
import {
  type CapacityServiceServer,
  InvalidPageSizeError,
  InvalidPageTokenError,
  type Replica,
  richStatus,
} from "@berth/common";
import {
  decodeReservationId,
  durationOf,
  type FieldViolation,
  parseLabelSelector,
  timestampMs,
  timestampMsCeil,
  timestampOf,
  type v1,
} from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { CancelSignal, Router } from "./router.js";
import {
  validateGetAvailability,
  validateGetPool,
  validateRelease,
  validateReserve,
} from "./validation.js";

/** What {@link capacityServiceHandlers} needs. */
export interface CapacityServiceOptions {
  readonly router: Router;
  /** This gateway's gossip replica, the only source of GetAvailability answers. */
  readonly replica: Replica;
  readonly logger: Logger;
  /** Wall clock for `as_of`, in epoch ms. Default Date.now. */
  readonly now?: () => number;
}

/**
 * The INVALID_ARGUMENT answer for a request with field violations: reason
 * INVALID_FIELD, metadata `field` naming the first violated field, and every
 * violation as a google.rpc.BadRequest detail.
 *
 * @param violations at least one violation
 */
export function invalidArgument(violations: readonly FieldViolation[]): grpc.ServiceError {
  const first = violations[0] ?? { field: "", description: "invalid request" };
  const more = violations.length > 1 ? ` (and ${violations.length - 1} more)` : "";
  return richStatus(
    grpc.status.INVALID_ARGUMENT,
    `invalid ${first.field}: ${first.description}${more}`,
    {
      reason: "INVALID_FIELD",
      metadata: { field: first.field },
      fieldViolations: violations.map((v) => ({ field: v.field, description: v.description })),
    },
  ) as grpc.ServiceError;
}

/** Thrown (internally) when a request has field violations; answered as INVALID_ARGUMENT. */
class InvalidRequestError extends Error {
  override readonly name = "InvalidRequestError";
  constructor(readonly violations: readonly FieldViolation[]) {
    super(violations.map((v) => `${v.field}: ${v.description}`).join("; "));
  }
}

function check(violations: FieldViolation[]): void {
  if (violations.length > 0) throw new InvalidRequestError(violations);
}

function isStatusError(e: unknown): e is grpc.ServiceError {
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as { code?: unknown }).code === "number" &&
    (e as { code: number }).code in grpc.status
  );
}

/**
 * A call's cancellation, as the Router reads it: what an AbortController gives, for a
 * fraction of its cost per call (no EventTarget, no DOMException). Listeners run once.
 */
class Cancellation implements CancelSignal {
  aborted = false;
  #listeners: (() => void)[] = [];

  addEventListener(_type: "abort", listener: () => void): void {
    if (!this.aborted) this.#listeners.push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const i = this.#listeners.indexOf(listener);
    if (i >= 0) this.#listeners.splice(i, 1);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    for (const l of this.#listeners.splice(0)) l();
  }
}

/**
 * Builds the CapacityService handlers. Every handler answers exactly once; an
 * unexpected exception becomes INTERNAL with an error id that is logged with the
 * stack, and never reaches grpc-js (so it can never take the process down).
 */
export function capacityServiceHandlers(options: CapacityServiceOptions): CapacityServiceServer {
  const { router, replica, logger } = options;
  const now = options.now ?? Date.now;

  function unary<Req, Res>(
    method: string,
    handle: (request: Req, deadline: grpc.Deadline, signal: CancelSignal) => Promise<Res> | Res,
  ): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const cancel = new Cancellation();
      let answered = false;
      // grpc-js reports "cancelled" whenever the stream closes, also after a normal
      // answer: cancel only a call still being worked on.
      call.once("cancelled", () => {
        if (!answered) cancel.abort();
      });
      const finish = (err: grpc.ServiceError | null, response?: Res): void => {
        answered = true;
        if (err === null) callback(null, response);
        else callback(err);
      };
      new Promise<Res>((resolve) => resolve(handle(call.request, call.getDeadline(), cancel)))
        .then(
          (response) => finish(null, response),
          (e: unknown) => finish(toServiceError(e, method), undefined),
        )
        .catch((e: unknown) => {
          // Only reachable if the callback itself throws (e.g. a serialization bug).
          logger.error({ err: e, method }, "failed to send a CapacityService answer");
        });
    };
  }

  function toServiceError(e: unknown, method: string): grpc.ServiceError {
    if (e instanceof InvalidRequestError) return invalidArgument(e.violations);
    if (e instanceof InvalidPageTokenError) {
      return invalidArgument([{ field: "page_token", description: e.message }]);
    }
    if (e instanceof InvalidPageSizeError) {
      return invalidArgument([{ field: "page_size", description: e.message }]);
    }
    if (isStatusError(e)) return e;
    const errorId = randomUUID();
    logger.error({ err: e, errorId, method }, "unexpected error in a CapacityService call");
    return Object.assign(new Error(`internal error (error id ${errorId})`), {
      code: grpc.status.INTERNAL,
      details: `internal error (error id ${errorId})`,
      metadata: new grpc.Metadata(),
    });
  }

  return {
    reserve: unary<v1.ReserveRequest, v1.ReserveResponse>(
      "Reserve",
      (request, deadline, signal) => {
        check(validateReserve(request));
        return router.call("reserve", request.pool, request, deadline, { signal });
      },
    ),

    release: unary<v1.ReleaseRequest, v1.ReleaseResponse>(
      "Release",
      (request, deadline, signal) => {
        check(validateRelease(request));
        // The reservation id names its pool: Release routes with no lookup table.
        const { pool } = decodeReservationId(request.reservationId);
        return router.call("release", pool, request, deadline, { signal });
      },
    ),

    getPool: unary<v1.GetPoolRequest, v1.GetPoolResponse>(
      "GetPool",
      (request, deadline, signal) => {
        check(validateGetPool(request));
        return router.call("getPool", request.pool, request, deadline, { signal });
      },
    ),

    getAvailability: unary<v1.GetAvailabilityRequest, v1.GetAvailabilityResponse>(
      "GetAvailability",
      (request) => {
        check(validateGetAvailability(request));
        const selector =
          request.labelSelector.trim() === ""
            ? undefined
            : parseLabelSelector(request.labelSelector);
        const window =
          request.window === undefined
            ? undefined
            : {
                startMs: timestampMs(request.window.start) ?? Number.NEGATIVE_INFINITY,
                endMs: timestampMsCeil(request.window.end),
              };
        const page = replica.query({
          ...(selector === undefined ? {} : { selector }),
          ...(window === undefined ? {} : { window }),
          minUnits: request.minUnits,
          includeClosed: request.includeClosed,
          pageSize: request.pageSize,
          pageToken: request.pageToken,
        });
        // Built whole, not through fromPartial, which would deep-copy every pool of the
        // page (labels included) once more before encoding.
        const response: v1.GetAvailabilityResponse = {
          pools: page.pools.map(
            (p): v1.PoolAvailability => ({
              pool: p.counters.pool,
              capacity: p.counters.capacity,
              reserved: p.counters.reserved,
              available: p.available,
              labels: p.counters.labels,
              window: p.counters.window,
              closed: p.counters.closed,
              version: p.counters.version,
              staleness: durationOf(p.staleMs),
            }),
          ),
          nextPageToken: page.nextPageToken,
          maxStaleness: durationOf(page.maxStaleMs),
          asOf: timestampOf(now()),
        };
        return response;
      },
    ),
  };
}
