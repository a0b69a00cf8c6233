// What a shard holds in force, as one short string: lets whoever applies specs (the
// local supervisor) skip a shard whose pools already have exactly the specs it would
// send, instead of sending one Configure per pool to learn that nothing changes.
import { createHash } from "node:crypto";
import { type internal, timestampMs } from "@berth/proto";

/** A pool's spec, in the form the worker holds it (window in ms since the epoch). */
export interface DigestedSpec {
  readonly capacity: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly window?: { readonly startMs: number; readonly endMs: number } | undefined;
  readonly closed: boolean;
  readonly generation: number;
}

const HASH_BYTES = 16;

/**
 * The digest of a set of pools and their specs: order-independent (XOR of one
 * 128-bit SHA-256 prefix per pool over its id and spec, plus the count), so a worker
 * can build it from its entities in any order and the supervisor from its manifests.
 * Equal digests mean equal sets of (pool, spec) except with probability ~2^-128.
 */
export class SpecDigest {
  private readonly acc = Buffer.alloc(HASH_BYTES);
  private count = 0;

  /** Adds one existing (configured, not retired) pool with its spec in force. */
  add(pool: string, spec: DigestedSpec): void {
    const labels = Object.keys(spec.labels)
      .sort()
      .map((k) => [k, spec.labels[k]]);
    const canonical = JSON.stringify([
      pool,
      spec.capacity,
      labels,
      spec.window?.startMs ?? null,
      spec.window?.endMs ?? null,
      spec.closed,
      spec.generation,
    ]);
    const h = createHash("sha256").update(canonical).digest();
    for (let i = 0; i < HASH_BYTES; i++) this.acc[i] = (this.acc[i] as number) ^ (h[i] as number);
    this.count++;
  }

  /** "<count>:<hex>"; "0:000…" for no pool. */
  toString(): string {
    return `${this.count}:${this.acc.toString("hex")}`;
  }
}

/**
 * The spec a Configure message would put in force, in the worker's form, or undefined
 * when it retires the pool (`deleted`). Timestamps become ms as the worker converts
 * them (seconds × 1000 + whole ms of nanos).
 */
export function digestedSpecOf(spec: internal.PoolSpec): DigestedSpec | undefined {
  if (spec.deleted) return undefined;
  const w = spec.window;
  return {
    capacity: spec.capacity,
    labels: spec.labels,
    window:
      w?.start === undefined || w.end === undefined
        ? undefined
        : { startMs: timestampMs(w.start), endMs: timestampMs(w.end) },
    closed: spec.closed,
    generation: spec.generation,
  };
}
