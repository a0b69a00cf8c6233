import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_SHARD_COUNT, murmur3, shardOf } from "./shard-hash.js";

// Published MurmurHash3_x86_32 vectors, cross-checked with an independent Python
// implementation of the reference algorithm. If one of these fails, the hash changed
// and every deployed pool would route to a different shard: do not "fix" the vector.
const vectors: [input: string | Uint8Array, seed: number, expected: number][] = [
  ["", 0, 0x00000000],
  ["", 1, 0x514e28b7],
  ["", 0xffffffff, 0x81f16f39],
  [new Uint8Array([0xff, 0xff, 0xff, 0xff]), 0, 0x76293b50],
  [new Uint8Array([0x21, 0x43, 0x65, 0x87]), 0, 0xf55b516b],
  ["a", 0, 0x3c2569b2],
  ["ab", 0, 0x9bbfd75f],
  ["abc", 0, 0xb3dd93fa],
  ["abcd", 0, 0x43ed676a],
  ["hello", 0, 0x248bfa47],
  ["The quick brown fox jumps over the lazy dog", 0, 0x2e4ff723],
  ["héllo", 0, 0xbc9fa068],
  ["日本", 0, 0xc4d9f942],
];

for (const [input, seed, expected] of vectors) {
  const label =
    typeof input === "string"
      ? JSON.stringify(input)
      : `bytes ${Buffer.from(input).toString("hex")}`;
  test(`murmur3 of ${label} with seed ${seed} is 0x${expected.toString(16).padStart(8, "0")}`, () => {
    assert.equal(murmur3(input, seed), expected);
  });
}

test("a string hashes exactly like its UTF-8 bytes", () => {
  for (const s of ["", "x", "ümlaut/ñ", "日本語のテキスト", "a🙂b"]) {
    assert.equal(murmur3(s), murmur3(new TextEncoder().encode(s)));
  }
});

test("the default shard count is 256", () => {
  assert.equal(DEFAULT_SHARD_COUNT, 256);
});

test("shardOf is pinned for known pool ids so the routing hash can never silently change", () => {
  assert.equal(shardOf("default/slots-berlin-2025-06-01", 256), 34);
  assert.equal(shardOf("team-a/seats", 256), 160);
  assert.equal(shardOf("kube-system/x", 256), 235);
  assert.equal(shardOf("default/slots-berlin-2025-06-01", 7), 5);
  assert.equal(shardOf("team-a/seats", 7), 2);
  assert.equal(shardOf("anything/at-all", 1), 0);
});

test("shardOf is always within [0, shardCount)", () => {
  for (const count of [1, 2, 3, 16, 255, 256, 1000, 2 ** 32 + 1]) {
    for (let i = 0; i < 200; i++) {
      const s = shardOf(`ns-${i}/pool-${i * 7}`, count);
      assert.ok(Number.isInteger(s) && s >= 0 && s < count, `${s} for ${count}`);
    }
  }
});

test("shardOf rejects a shard count that is not a positive integer with a RangeError", () => {
  for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    assert.throws(() => shardOf("a/b", bad), {
      name: "RangeError",
      message: `shard count must be a positive integer, got ${String(bad)}`,
    });
  }
});
