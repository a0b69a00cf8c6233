// Validation of WorkerService requests: the gateway validates first, the worker again
// (defence in depth), so a malformed request is INVALID_ARGUMENT, never a crash.
import {
  type DecodedReservationId,
  decodeReservationId,
  type FieldViolation,
  type internal,
  labelKeyProblem,
  labelValueProblem,
  MAX_CALL_TOKEN_LENGTH,
  MAX_CAPACITY,
  MAX_LABELS,
  MAX_REQUEST_ID_LENGTH,
  MAX_RESERVATION_ID_LENGTH,
  MAX_TIMESTAMP_SECONDS,
  MAX_UNITS,
  MalformedReservationIdError,
  MIN_TIMESTAMP_SECONDS,
  MIN_UNITS,
  poolIdProblem,
  timestampMs,
  type v1,
} from "@berth/proto";
import type { PoolSpec, ReservationKey } from "../domain/pool.js";

const REQUEST_ID = /^[\x20-\x7e]+$/;
const CALL_TOKEN = /^[\x21-\x7e]+$/;

/** A validated value, or the first violation found. */
export type Validated<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly violation: FieldViolation };

const bad = (field: string, description: string): Validated<never> => ({
  ok: false,
  violation: { field, description },
});

function poolField(pool: string, field: string): FieldViolation | undefined {
  const problem = poolIdProblem(pool);
  return problem === undefined ? undefined : { field, description: problem };
}

/** A Reserve's pool, units, request id and call token (undefined when empty). */
export function validateReserve(
  req: internal.ReserveRequest,
): Validated<{ pool: string; units: number; requestId: string; callToken: string | undefined }> {
  const r = req.request;
  if (r === undefined) return bad("request", "is required");
  const p = poolField(r.pool, "request.pool");
  if (p !== undefined) return { ok: false, violation: p };
  if (!Number.isInteger(r.units) || r.units < MIN_UNITS || r.units > MAX_UNITS) {
    return bad("request.units", `must be from ${MIN_UNITS} to ${MAX_UNITS}, got ${r.units}`);
  }
  if (r.requestId.length === 0 || r.requestId.length > MAX_REQUEST_ID_LENGTH) {
    return bad(
      "request.request_id",
      `must be 1 to ${MAX_REQUEST_ID_LENGTH} characters, got ${r.requestId.length}`,
    );
  }
  if (!REQUEST_ID.test(r.requestId)) {
    return bad("request.request_id", "must be printable ASCII (0x20 to 0x7E)");
  }
  const token = req.callToken;
  if (token.length > MAX_CALL_TOKEN_LENGTH || (token !== "" && !CALL_TOKEN.test(token))) {
    return bad(
      "call_token",
      `must be empty or 1 to ${MAX_CALL_TOKEN_LENGTH} printable ASCII characters (0x21 to 0x7E)`,
    );
  }
  return {
    ok: true,
    value: {
      pool: r.pool,
      units: r.units,
      requestId: r.requestId,
      callToken: token === "" ? undefined : token,
    },
  };
}

/** A Release's reservation id, decoded into its pool, seq and the key it presents. */
export function validateRelease(
  req: internal.ReleaseRequest,
): Validated<{ reservationId: string; pool: string; seq: number; key: ReservationKey }> {
  const r = req.request;
  if (r === undefined) return bad("request", "is required");
  const id = r.reservationId;
  if (id.length === 0) return bad("request.reservation_id", "is required");
  if (id.length > MAX_RESERVATION_ID_LENGTH) {
    return bad(
      "request.reservation_id",
      `must be at most ${MAX_RESERVATION_ID_LENGTH} characters, got ${id.length}`,
    );
  }
  let decoded: DecodedReservationId;
  try {
    decoded = decodeReservationId(id);
  } catch (e: unknown) {
    if (e instanceof MalformedReservationIdError) return bad("request.reservation_id", e.message);
    throw e;
  }
  const p = poolField(decoded.pool, "request.reservation_id");
  if (p !== undefined) return { ok: false, violation: p };
  if (!Number.isSafeInteger(decoded.seq) || decoded.seq < 1) {
    return bad(
      "request.reservation_id",
      `names reservation seq ${decoded.seq}, not a positive integer`,
    );
  }
  const key: ReservationKey =
    decoded.format === "r2"
      ? { kind: "secret", secret: decoded.secret }
      : { kind: "legacy", checksumValid: decoded.checksumValid };
  return { ok: true, value: { reservationId: id, pool: decoded.pool, seq: decoded.seq, key } };
}

/** A GetPool's pool id. */
export function validateGetPool(req: internal.GetPoolRequest): Validated<{ pool: string }> {
  const r = req.request;
  if (r === undefined) return bad("request", "is required");
  const p = poolField(r.pool, "request.pool");
  if (p !== undefined) return { ok: false, violation: p };
  return { ok: true, value: { pool: r.pool } };
}

/**
 * A Configure's pool id and the spec in domain form, or `deleted` (the pool is to be
 * retired: the spec's other fields are ignored, so a spec that was refused never
 * keeps its CapacityPool from being deleted).
 */
export function validateConfigure(
  req: internal.ConfigureRequest,
): Validated<{ pool: string; spec: PoolSpec } | { pool: string; deleted: true }> {
  const s = req.spec;
  if (s === undefined) return bad("spec", "is required");
  const p = poolField(s.pool, "spec.pool");
  if (p !== undefined) return { ok: false, violation: p };
  if (s.deleted) return { ok: true, value: { pool: s.pool, deleted: true } };
  if (!Number.isInteger(s.capacity) || s.capacity < 0 || s.capacity > MAX_CAPACITY) {
    return bad("spec.capacity", `must be from 0 to ${MAX_CAPACITY}, got ${s.capacity}`);
  }
  if (!Number.isSafeInteger(s.generation) || s.generation < 0) {
    return bad("spec.generation", `must be a non-negative integer, got ${s.generation}`);
  }
  const keys = Object.keys(s.labels);
  if (keys.length > MAX_LABELS) {
    return bad("spec.labels", `at most ${MAX_LABELS} labels allowed, got ${keys.length}`);
  }
  const labels: Record<string, string> = {};
  for (const k of keys) {
    const v = s.labels[k] ?? "";
    const problem = labelKeyProblem(k) ?? labelValueProblem(v);
    if (problem !== undefined) return bad(`spec.labels[${JSON.stringify(k)}]`, problem);
    labels[k] = v;
  }
  let window: { startMs: number; endMs: number } | undefined;
  if (s.window !== undefined) {
    const w = windowOf(s.window, "spec.window");
    if (!w.ok) return w;
    window = w.value;
  }
  const spec: PoolSpec = {
    capacity: s.capacity,
    labels,
    closed: s.closed,
    generation: s.generation,
    ...(window === undefined ? {} : { window }),
  };
  return { ok: true, value: { pool: s.pool, spec } };
}

function windowOf(w: v1.TimeWindow, field: string): Validated<{ startMs: number; endMs: number }> {
  if (w.start === undefined) return bad(`${field}.start`, "is required when a window is given");
  if (w.end === undefined) return bad(`${field}.end`, "is required when a window is given");
  for (const [name, t] of [
    ["start", w.start],
    ["end", w.end],
  ] as const) {
    if (
      !Number.isInteger(t.seconds) ||
      t.seconds < MIN_TIMESTAMP_SECONDS ||
      t.seconds > MAX_TIMESTAMP_SECONDS ||
      !Number.isInteger(t.nanos) ||
      t.nanos < 0 ||
      t.nanos > 999_999_999
    ) {
      return bad(`${field}.${name}`, "is not a valid timestamp (0001-01-01 to 9999-12-31)");
    }
  }
  const startMs = timestampMs(w.start);
  const endMs = timestampMs(w.end);
  if (endMs <= startMs) return bad(`${field}.end`, "must be after start");
  return { ok: true, value: { startMs, endMs } };
}
