// Keeps gossip messages under gRPC's default 4 MiB receive limit without encoding twice.
import type { internal } from "@berth/proto";

/**
 * Largest encoded size, in bytes, of one Push or Pull message this package sends:
 * 3 MiB, a wide margin under grpc-js's default 4 MiB receive limit.
 */
export const MAX_GOSSIP_MESSAGE_BYTES = 3 * 1024 * 1024;

// Worst case of every fixed-size field of PoolCounters (tag + widest varint):
// capacity, reserved (negative int32 = 10 bytes), closed, deleted, version, window (two
// Timestamps), confirmed_at, and the string/map length prefixes.
const FIXED_OVERHEAD = 128;
const PER_LABEL_OVERHEAD = 24;

/**
 * An upper bound of the bytes `counters` adds to a message that repeats it
 * (the entry, its tag and its length prefix). Cheap: no encoding.
 */
export function encodedSizeBound(counters: internal.PoolCounters): number {
  let n = FIXED_OVERHEAD + Buffer.byteLength(counters.pool, "utf8");
  for (const key in counters.labels) {
    n += PER_LABEL_OVERHEAD + Buffer.byteLength(key, "utf8");
    n += Buffer.byteLength(counters.labels[key] ?? "", "utf8");
  }
  return n;
}

/**
 * Splits `entries` into consecutive chunks whose encoded size stays under
 * `maxBytes` (one entry larger than that still gets a chunk of its own).
 */
export function* chunkBySize(
  entries: Iterable<internal.PoolCounters>,
  maxBytes: number = MAX_GOSSIP_MESSAGE_BYTES,
): Generator<internal.PoolCounters[]> {
  let chunk: internal.PoolCounters[] = [];
  let size = 0;
  for (const e of entries) {
    const n = encodedSizeBound(e);
    if (chunk.length > 0 && size + n > maxBytes) {
      yield chunk;
      chunk = [];
      size = 0;
    }
    chunk.push(e);
    size += n;
  }
  if (chunk.length > 0) yield chunk;
}
