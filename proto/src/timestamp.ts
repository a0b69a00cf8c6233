// google.protobuf.Timestamp ⇄ Unix epoch milliseconds: the one conversion every
// process uses (worker, gossip, gateway, CLI). Sub-millisecond digits are dropped.
import type { Timestamp } from "./rfc3339.js";

/** A Timestamp for Unix epoch milliseconds (a fraction of a millisecond is rounded). */
export function timestampOf(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round(ms - seconds * 1000) * 1_000_000 };
}

/**
 * Unix epoch milliseconds of a Timestamp, rounded down (the sub-millisecond part is
 * dropped); undefined when the Timestamp is absent.
 */
export function timestampMs(t: Readonly<Timestamp>): number;
export function timestampMs(t: Readonly<Timestamp> | undefined): number | undefined;
export function timestampMs(t: Readonly<Timestamp> | undefined): number | undefined {
  return t === undefined ? undefined : t.seconds * 1000 + Math.floor(t.nanos / 1_000_000);
}

/**
 * Unix epoch milliseconds of a Timestamp, rounded up (so a window end never moves
 * before its start); +Infinity when the Timestamp is absent (an open end).
 */
export function timestampMsCeil(t: Readonly<Timestamp> | undefined): number {
  return t === undefined ? Number.POSITIVE_INFINITY : t.seconds * 1000 + Math.ceil(t.nanos / 1e6);
}

/**
 * A google.protobuf.Duration of `ms` milliseconds, to the nanosecond (a negative span,
 * or NaN, is 0).
 */
export function durationOf(ms: number): { seconds: number; nanos: number } {
  if (!(ms > 0)) return { seconds: 0, nanos: 0 };
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1_000_000);
  return nanos >= 1_000_000_000
    ? { seconds: seconds + 1, nanos: nanos - 1_000_000_000 }
    : { seconds, nanos };
}

/** Milliseconds of a google.protobuf.Duration (a fraction of a millisecond kept). */
export function durationMs(d: Readonly<{ seconds: number; nanos: number }>): number {
  return d.seconds * 1000 + d.nanos / 1_000_000;
}
