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
