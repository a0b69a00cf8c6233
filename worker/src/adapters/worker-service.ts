// grpc-js handlers of berth.internal.v1.WorkerService over the shard ownership layer.
import { randomBytes } from "node:crypto";
import {
  encodeLegacyReservationId,
  encodeReservationId,
  type internal,
  RESERVATION_SECRET_BYTES,
} from "@berth/proto";
import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { ShardOwnership } from "../ownership/shard-ownership.js";
import { type Failure, toGrpcError } from "./grpc-errors.js";
import {
  validateConfigure,
  validateGetPool,
  validateRelease,
  validateReserve,
} from "./request-validation.js";
import { poolToWire } from "./wire.js";

/** What the WorkerService handlers need. */
export interface WorkerServiceDeps {
  /** This worker's member id (reported as a pool's owner). */
  readonly nodeId: string;
  readonly ownership: ShardOwnership;
  readonly logger: Logger;
  /** The clock stamped on commands (`at`). Default Date.now. */
  readonly now?: () => number;
  /** Source of reservation secrets. Default {@link newReservationSecret}. */
  readonly newSecret?: () => string;
}

/**
 * A fresh reservation secret: {@link RESERVATION_SECRET_BYTES} bytes from the
 * operating system's CSPRNG, in base64url. Minted here, at the owner's edge, and
 * handed to the pure decider in the reserve command: the owner is where the secret
 * is stored, so no caller (gateway, control plane, a forged internal request) can
 * choose it, and a re-decided command keeps the secret it was given.
 */
export function newReservationSecret(): string {
  return randomBytes(RESERVATION_SECRET_BYTES).toString("base64url");
}

type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly failure: Failure };

const done = <T>(value: T): Result<T> => ({ ok: true, value });
const failed = (failure: Failure): Result<never> => ({ ok: false, failure });

/**
 * The WorkerService: validates every request (a malformed one is INVALID_ARGUMENT,
 * never a crash), routes it through the ownership layer within the call's deadline,
 * and maps every failure through {@link toGrpcError}.
 */
export function workerServiceHandlers(deps: WorkerServiceDeps): internal.WorkerServiceServer {
  const now = deps.now ?? Date.now;
  const newSecret = deps.newSecret ?? newReservationSecret;
  const log = deps.logger;
  const unexpected = (what: string): Result<never> =>
    failed({ kind: "internal", message: `unexpected ${what} (a worker bug; logged)` });

  return {
    reserve(call, callback) {
      answer(call, callback, log, async (deadline) => {
        const v = validateReserve(call.request);
        if (!v.ok) return failed({ kind: "invalid_field", violation: v.violation });
        const { pool, units, requestId, callToken } = v.value;
        const { outcome } = await deps.ownership.execute(
          pool,
          {
            type: "reserve",
            units,
            requestId,
            secret: newSecret(),
            ...(callToken === undefined ? {} : { callToken }),
            at: now(),
          },
          deadline,
        );
        if (outcome.kind !== "ok")
          return outcome.kind === "view" ? unexpected("view") : failed({ ...outcome, pool });
        const reply = outcome.reply;
        if (reply.type !== "reserved") return unexpected(`${reply.type} reply to reserve`);
        return done({
          reservationId:
            reply.secret === undefined
              ? encodeLegacyReservationId(pool, reply.reservationSeq)
              : encodeReservationId(pool, reply.reservationSeq, reply.secret),
          pool,
          units: reply.units,
          replayed: reply.replayed,
          version: outcome.version,
        });
      });
    },

    release(call, callback) {
      answer(call, callback, log, async (deadline) => {
        const v = validateRelease(call.request);
        if (!v.ok) return failed({ kind: "invalid_field", violation: v.violation });
        const { reservationId, pool, seq, key } = v.value;
        const { outcome } = await deps.ownership.execute(
          pool,
          { type: "release", reservationSeq: seq, key, at: now() },
          deadline,
        );
        if (outcome.kind !== "ok")
          return outcome.kind === "view" ? unexpected("view") : failed({ ...outcome, pool });
        const reply = outcome.reply;
        if (reply.type !== "released") return unexpected(`${reply.type} reply to release`);
        return done({
          reservationId,
          pool,
          units: reply.units,
          alreadyReleased: reply.alreadyReleased,
          version: outcome.version,
        });
      });
    },

    getPool(call, callback) {
      answer(call, callback, log, async (deadline) => {
        const v = validateGetPool(call.request);
        if (!v.ok) return failed({ kind: "invalid_field", violation: v.violation });
        const { pool } = v.value;
        const r = await deps.ownership.execute(pool, { type: "read" }, deadline);
        const outcome = r.outcome;
        if (outcome.kind !== "view")
          return outcome.kind === "ok" ? unexpected("reply") : failed(outcome);
        // A retired pool (tombstone view) answers as one never configured.
        if (outcome.view === undefined || outcome.view.retired || r.shard === undefined) {
          return failed({ kind: "pool_not_found", pool });
        }
        return done({
          pool: poolToWire(outcome.view, { shard: r.shard, owner: deps.nodeId, epoch: r.epoch }),
        });
      });
    },

    configure(call, callback) {
      answer(call, callback, log, async (deadline) => {
        const v = validateConfigure(call.request);
        if (!v.ok) return failed({ kind: "invalid_field", violation: v.violation });
        const { pool } = v.value;
        const retire = "deleted" in v.value;
        const r = await deps.ownership.execute(
          pool,
          "deleted" in v.value
            ? { type: "retire", at: now() }
            : { type: "configure", spec: v.value.spec, at: now() },
          deadline,
        );
        const outcome = r.outcome;
        if (outcome.kind !== "ok")
          return outcome.kind === "view" ? unexpected("view") : failed({ ...outcome, pool });
        const reply = outcome.reply;
        if (reply.type !== "configured") return unexpected(`${reply.type} reply to configure`);
        // Retired (or never configured): there is no pool to report.
        if (retire) return done({ pool: undefined, changed: reply.changed });
        if (outcome.view === undefined || outcome.view.retired || r.shard === undefined) {
          return unexpected("configure without a pool");
        }
        return done({
          pool: poolToWire(outcome.view, { shard: r.shard, owner: deps.nodeId, epoch: r.epoch }),
          changed: reply.changed,
        });
      });
    },

    echo(call, callback) {
      callback(null, { payload: call.request.payload });
    },
  };
}

/**
 * Runs a handler body within the call's deadline and answers exactly once: the value,
 * or the failure mapped to a gRPC status. Never throws, never leaves the call hanging.
 */
function answer<Req, Res>(
  call: ServerUnaryCall<Req, Res>,
  callback: sendUnaryData<Res>,
  logger: Logger,
  body: (deadline: number | undefined) => Promise<Result<Res>>,
): void {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  const deadline = Number.isFinite(ms) ? ms : undefined;
  if (deadline !== undefined && deadline <= Date.now()) {
    callback(
      toGrpcError({ kind: "deadline_exceeded", message: "the call's deadline has passed" }, logger),
    );
    return;
  }
  let result: Promise<Result<Res>>;
  try {
    result = body(deadline);
  } catch (e: unknown) {
    result = Promise.resolve(failed({ kind: "error", error: e }));
  }
  void result.then(
    (r) => {
      if (r.ok) callback(null, r.value);
      else callback(toGrpcError(r.failure, logger));
    },
    (e: unknown) => callback(toGrpcError({ kind: "error", error: e }, logger)),
  );
}
