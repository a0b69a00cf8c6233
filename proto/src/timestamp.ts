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

/** A google.protobuf.Duration for whole milliseconds (a negative span is 0, a fraction rounded). */
export function durationOf(ms: number): { seconds: number; nanos: number } {
  const whole = Math.max(0, Math.round(ms));
  return { seconds: Math.floor(whole / 1000), nanos: (whole % 1000) * 1_000_000 };
}
