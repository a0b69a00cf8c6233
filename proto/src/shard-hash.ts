/**
 * The pool→shard hash every Berth process must agree on. It is part of the wire
 * contract: changing it would route pools to the wrong owner, so the test vectors
 * in `shard-hash.test.ts` pin it forever.
 */

/** Number of shards when the installation does not choose one. Fixed at install. */
export const DEFAULT_SHARD_COUNT = 256;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const utf8 = new TextEncoder();

/**
 * MurmurHash3, x86 32-bit variant (Austin Appleby's `MurmurHash3_x86_32`), as an
 * unsigned 32-bit integer. Strings are hashed as their UTF-8 bytes.
 *
 * @param input the bytes to hash, or a string hashed as UTF-8
 * @param seed a 32-bit seed; Berth always uses 0
 * @returns the hash, in `[0, 2^32)`
 */
export function murmur3(input: string | Uint8Array, seed = 0): number {
  const data = typeof input === "string" ? utf8.encode(input) : input;
  const length = data.length;
  const blocks = length - (length % 4);
  let h = seed >>> 0;
  for (let i = 0; i < blocks; i += 4) {
    let k =
      (data[i] as number) |
      ((data[i + 1] as number) << 8) |
      ((data[i + 2] as number) << 16) |
      ((data[i + 3] as number) << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = length & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= (data[blocks + 2] as number) << 16;
    if (tail >= 2) k ^= (data[blocks + 1] as number) << 8;
    k ^= data[blocks] as number;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Throws a RangeError unless `shardCount` is a positive safe integer.
 *
 * @param shardCount the value to check
 */
export function assertShardCount(shardCount: number): void {
  if (!Number.isSafeInteger(shardCount) || shardCount < 1) {
    throw new RangeError(`shard count must be a positive integer, got ${String(shardCount)}`);
  }
}

/**
 * The shard a pool belongs to: `murmur3(utf8(poolId), seed 0) mod shardCount`.
 * It never changes for a given pool id and shard count.
 *
 * @param poolId the pool id `<namespace>/<name>` (not validated here)
 * @param shardCount the installation's shard count, a positive integer
 * @returns the shard number, in `[0, shardCount)`
 * @throws RangeError when `shardCount` is not a positive integer
 */
export function shardOf(poolId: string, shardCount: number): number {
  assertShardCount(shardCount);
  return murmur3(poolId) % shardCount;
}
