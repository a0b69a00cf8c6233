/**
 * Validation of every public request against the bounds documented in
 * `berth/v1/capacity.proto`. Pure: no IO, no clock. Each function returns the
 * request's field violations (empty when valid) and never throws, whatever it is
 * given — a request decoded from the wire, or any other value.
 */
import { decodePageToken, InvalidPageTokenError } from "@berth/common";
import {
  decodeReservationId,
  type FieldViolation,
  LabelSelectorSyntaxError,
  MAX_LABEL_SELECTOR_LENGTH,
  MAX_MIN_UNITS,
  MAX_NANOS,
  MAX_PAGE_SIZE,
  MAX_PAGE_TOKEN_LENGTH,
  MAX_POOL_ID_LENGTH,
  MAX_REQUEST_ID_LENGTH,
  MAX_RESERVATION_ID_LENGTH,
  MAX_TIMESTAMP_SECONDS,
  MAX_UNITS,
  MalformedReservationIdError,
  MIN_TIMESTAMP_SECONDS,
  MIN_UNITS,
  parseLabelSelector,
  poolIdProblem,
  type v1,
} from "@berth/proto";

const QUOTE_LIMIT = 40;

/** Quotes untrusted text for a description: JSON-escaped and bounded. */
function quote(text: string): string {
  return text.length > QUOTE_LIMIT
    ? `${JSON.stringify(text.slice(0, QUOTE_LIMIT))}… (${text.length} characters)`
    : JSON.stringify(text);
}

/** Describes any value briefly, for a wrong-type message. */
function describe(value: unknown): string {
  if (typeof value === "string") return `the string ${quote(value)}`;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
    return String(value);
  }
  if (value === null) return "null";
  return typeof value;
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
}

/** A string field; proto3 defaults a missing one to "". */
function stringField(out: FieldViolation[], field: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") {
    out.push({ field, description: `must be a string, got ${describe(value)}` });
    return undefined;
  }
  return value;
}

/** An integer field in [min, max]; proto3 defaults a missing one to 0. */
function integerField(
  out: FieldViolation[],
  field: string,
  value: unknown,
  min: number,
  max: number,
  what: string,
): number | undefined {
  const v = value === undefined || value === null ? 0 : value;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    out.push({ field, description: `must be an integer from ${what}, got ${describe(v)}` });
    return undefined;
  }
  if (v < min || v > max) {
    out.push({ field, description: `must be from ${what}, got ${v}` });
    return undefined;
  }
  return v;
}

function poolField(out: FieldViolation[], field: string, value: unknown): void {
  const pool = stringField(out, field, value);
  if (pool === undefined) return;
  // poolIdProblem bounds the length too; checking it first keeps the message short.
  if (pool.length > MAX_POOL_ID_LENGTH) {
    out.push({
      field,
      description: `pool id is ${pool.length} characters long; the maximum is ${MAX_POOL_ID_LENGTH}`,
    });
    return;
  }
  const problem = poolIdProblem(pool);
  if (problem !== undefined) out.push({ field, description: problem });
}

/** True for printable ASCII, U+0020 through U+007E. */
function isPrintableAscii(code: number): boolean {
  return code >= 0x20 && code <= 0x7e;
}

function requestIdField(out: FieldViolation[], value: unknown): void {
  const field = "request_id";
  const id = stringField(out, field, value);
  if (id === undefined) return;
  if (id.length === 0) {
    out.push({ field, description: "is empty; a Reserve needs a client-chosen idempotency key" });
    return;
  }
  if (id.length > MAX_REQUEST_ID_LENGTH) {
    out.push({
      field,
      description: `is ${id.length} characters long; the maximum is ${MAX_REQUEST_ID_LENGTH}`,
    });
    return;
  }
  for (let i = 0; i < id.length; i++) {
    const code = id.charCodeAt(i);
    if (!isPrintableAscii(code)) {
      out.push({
        field,
        description: `has a non-printable or non-ASCII character (U+${code.toString(16).toUpperCase().padStart(4, "0")}) at index ${i}; only printable ASCII (U+0020 to U+007E) is allowed`,
      });
      return;
    }
  }
}

/** Checks a google.protobuf.Timestamp is one RFC 3339 can express; returns its nanoseconds since the epoch as bigint. */
function timestampField(out: FieldViolation[], field: string, value: unknown): bigint | undefined {
  if (value === undefined || value === null) {
    out.push({ field, description: "is required when window is set" });
    return undefined;
  }
  if (typeof value !== "object") {
    out.push({ field, description: `must be a Timestamp, got ${describe(value)}` });
    return undefined;
  }
  const ts = value as Record<string, unknown>;
  const seconds = integerField(
    out,
    `${field}.seconds`,
    ts.seconds,
    MIN_TIMESTAMP_SECONDS,
    MAX_TIMESTAMP_SECONDS,
    `${MIN_TIMESTAMP_SECONDS} (0001-01-01T00:00:00Z) to ${MAX_TIMESTAMP_SECONDS} (9999-12-31T23:59:59Z)`,
  );
  const nanos = integerField(out, `${field}.nanos`, ts.nanos, 0, MAX_NANOS, `0 to ${MAX_NANOS}`);
  if (seconds === undefined || nanos === undefined) return undefined;
  return BigInt(seconds) * 1_000_000_000n + BigInt(nanos);
}

function windowField(out: FieldViolation[], value: unknown): void {
  if (value === undefined || value === null) return;
  if (typeof value !== "object") {
    out.push({ field: "window", description: `must be a TimeWindow, got ${describe(value)}` });
    return;
  }
  const w = value as Record<string, unknown>;
  const start = timestampField(out, "window.start", w.start);
  const end = timestampField(out, "window.end", w.end);
  if (start !== undefined && end !== undefined && start >= end) {
    out.push({
      field: "window",
      description: "start must be before end (the window is the half-open interval [start, end))",
    });
  }
}

/**
 * Field violations of a Reserve request: pool id, units (1 to 1,000,000) and
 * request_id (1 to 128 printable ASCII characters).
 *
 * @param request the request as decoded (or any value)
 * @returns the violations, empty when the request is valid
 */
export function validateReserve(request: v1.ReserveRequest | unknown): FieldViolation[] {
  const r = asRecord(request);
  const out: FieldViolation[] = [];
  poolField(out, "pool", r.pool);
  integerField(out, "units", r.units, MIN_UNITS, MAX_UNITS, "1 to 1,000,000");
  requestIdField(out, r.requestId);
  return out;
}

/**
 * Field violations of a Release request: the reservation id must be shaped like
 * one Reserve returns (at most 512 characters, well-formed). Whether it matches a
 * reservation (its secret, or an r1 id's checksum) is for the owner to say, with
 * the same NOT_FOUND as for an unknown reservation: no answer here may help guess.
 *
 * @param request the request as decoded (or any value)
 * @returns the violations, empty when the request is valid
 */
export function validateRelease(request: v1.ReleaseRequest | unknown): FieldViolation[] {
  const r = asRecord(request);
  const out: FieldViolation[] = [];
  const field = "reservation_id";
  const id = stringField(out, field, r.reservationId);
  if (id === undefined) return out;
  if (id.length === 0) {
    out.push({ field, description: "is empty; pass the reservation_id Reserve returned" });
  } else if (id.length > MAX_RESERVATION_ID_LENGTH) {
    out.push({
      field,
      description: `is ${id.length} characters long; the maximum is ${MAX_RESERVATION_ID_LENGTH}`,
    });
  } else {
    const problem = reservationIdProblem(id);
    if (problem !== undefined) out.push({ field, description: problem });
  }
  return out;
}

function reservationIdProblem(id: string): string | undefined {
  try {
    decodeReservationId(id);
    return undefined;
  } catch (e: unknown) {
    if (e instanceof MalformedReservationIdError) return e.reason;
    throw e;
  }
}

/**
 * Field violations of a GetAvailability request: label selector syntax (at most
 * 1,024 characters; errors name the position), window (valid Timestamps, start
 * before end), min_units (0 to 1,000,000), page_size (0 to 1,000) and page_token
 * (empty or a token a previous response returned).
 *
 * @param request the request as decoded (or any value)
 * @returns the violations, empty when the request is valid
 */
export function validateGetAvailability(
  request: v1.GetAvailabilityRequest | unknown,
): FieldViolation[] {
  const r = asRecord(request);
  const out: FieldViolation[] = [];
  const selector = stringField(out, "label_selector", r.labelSelector);
  if (selector !== undefined) {
    if (selector.length > MAX_LABEL_SELECTOR_LENGTH) {
      out.push({
        field: "label_selector",
        description: `is ${selector.length} characters long; the maximum is ${MAX_LABEL_SELECTOR_LENGTH}`,
      });
    } else {
      const problem = selectorProblem(selector);
      if (problem !== undefined) out.push({ field: "label_selector", description: problem });
    }
  }
  windowField(out, r.window);
  integerField(out, "min_units", r.minUnits, 0, MAX_MIN_UNITS, "0 to 1,000,000 (0 means 1)");
  integerField(out, "page_size", r.pageSize, 0, MAX_PAGE_SIZE, "0 to 1,000 (0 means 100)");
  const token = stringField(out, "page_token", r.pageToken);
  if (token !== undefined && token !== "") {
    if (token.length > MAX_PAGE_TOKEN_LENGTH) {
      out.push({
        field: "page_token",
        description: `is ${token.length} characters long; pass the next_page_token of a previous response unchanged`,
      });
    } else {
      const problem = pageTokenProblem(token);
      if (problem !== undefined) out.push({ field: "page_token", description: problem });
    }
  }
  if (r.includeClosed !== undefined && typeof r.includeClosed !== "boolean") {
    out.push({
      field: "include_closed",
      description: `must be a boolean, got ${describe(r.includeClosed)}`,
    });
  }
  return out;
}

function selectorProblem(selector: string): string | undefined {
  try {
    parseLabelSelector(selector);
    return undefined;
  } catch (e: unknown) {
    if (e instanceof LabelSelectorSyntaxError) {
      return `${e.problem} at position ${e.position} (0-based) of ${quote(selector)}`;
    }
    throw e;
  }
}

function pageTokenProblem(token: string): string | undefined {
  try {
    decodePageToken(token);
    return undefined;
  } catch (e: unknown) {
    if (e instanceof InvalidPageTokenError) {
      return `${e.reason}; pass the next_page_token of a previous response unchanged`;
    }
    throw e;
  }
}

/**
 * Field violations of a GetPool request: the pool id.
 *
 * @param request the request as decoded (or any value)
 * @returns the violations, empty when the request is valid
 */
export function validateGetPool(request: v1.GetPoolRequest | unknown): FieldViolation[] {
  const out: FieldViolation[] = [];
  poolField(out, "pool", asRecord(request).pool);
  return out;
}
