// Per-bucket digests of gossip entries: what lets anti-entropy send O(buckets) bytes
// a round instead of every entry. Pools fall into BUCKET_COUNT buckets by a hash of
// their id; a bucket's digest over a set of (pool, version) is its count, the sum of
// the versions and the sum (mod 2^32) of a hash of each pair. All three are
// order-independent and updated in O(1) as an entry is added, replaced or removed.
import type { internal } from "@berth/proto";

/**
 * Buckets pools are grouped in for digests. Independent of the shard count (which the
 * gossip layer does not know): digests are kept per sending node, so a node's bucket
 * holds only the pools it owns.
 */
export const BUCKET_COUNT = 512;

/** FNV-1a, 32 bits, over the UTF-16 code units of `s`. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The bucket of a pool whose id hashes (fnv1a32) to `poolHash`. */
export function bucketOfHash(poolHash: number, bucketCount: number = BUCKET_COUNT): number {
  return poolHash % bucketCount;
}

/** The bucket of `pool`. */
export function bucketOf(pool: string, bucketCount: number = BUCKET_COUNT): number {
  return bucketOfHash(fnv1a32(pool), bucketCount);
}

/** Hash of one (pool, version) pair, from the pool's fnv1a32. */
export function itemHash(poolHash: number, version: number): number {
  // Both halves of the version (it may exceed 2^32), mixed with murmur3's finalizer.
  let h = (poolHash ^ Math.imul(version >>> 0, 0x9e3779b1)) >>> 0;
  h = (h ^ Math.imul(Math.floor(version / 0x1_0000_0000) >>> 0, 0x85ebca6b)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A mutable digest accumulator. */
export class DigestSum {
  count = 0;
  versionSum = 0;
  hash = 0;

  add(poolHash: number, version: number): void {
    this.count++;
    this.versionSum += version;
    this.hash = (this.hash + itemHash(poolHash, version)) >>> 0;
  }

  remove(poolHash: number, version: number): void {
    this.count--;
    this.versionSum -= version;
    this.hash = (this.hash - itemHash(poolHash, version)) >>> 0;
  }

  equals(d: Pick<internal.BucketDigest, "count" | "versionSum" | "hash">): boolean {
    return this.count === d.count && this.versionSum === d.versionSum && this.hash === d.hash;
  }

  toMessage(bucket: number): internal.BucketDigest {
    return { bucket, count: this.count, versionSum: this.versionSum, hash: this.hash };
  }
}
