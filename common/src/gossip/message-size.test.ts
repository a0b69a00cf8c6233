import assert from "node:assert/strict";
import { test } from "node:test";
import { internal } from "@berth/proto";
import fc from "fast-check";
import { chunkBySize, encodedSizeBound, MAX_GOSSIP_MESSAGE_BYTES } from "./message-size.js";

const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const ts = fc.record({
  seconds: fc.integer({ min: -62135596800, max: 253402300799 }),
  nanos: fc.integer({ min: 0, max: 999_999_999 }),
});
const counters = fc.record({
  pool: fc.string({ unit: "grapheme", maxLength: 320 }),
  capacity: int32,
  reserved: int32,
  labels: fc.dictionary(
    fc.string({ maxLength: 63 }),
    fc.string({ unit: "grapheme", maxLength: 63 }),
    { maxKeys: 8 },
  ),
  window: fc.option(
    fc.record({ start: fc.option(ts, { nil: undefined }), end: fc.option(ts, { nil: undefined }) }),
    { nil: undefined },
  ),
  closed: fc.boolean(),
  deleted: fc.boolean(),
  version: fc.maxSafeNat(),
  confirmedAt: fc.option(ts, { nil: undefined }),
});

test("the size bound is never below the real encoded size of an entry in a message", () => {
  fc.assert(
    fc.property(counters, (c) => {
      const alone = internal.PushRequest.encode({ from: "", entries: [c] }).finish().length;
      assert.ok(encodedSizeBound(c) >= alone, `${encodedSizeBound(c)} < ${alone}`);
    }),
    { numRuns: 500 },
  );
});

test("chunks of 100k pools each encode to less than the message limit, in order", () => {
  const all = Array.from({ length: 100_000 }, (_, i) =>
    internal.PoolCounters.fromPartial({
      pool: `namespace-${i % 100}/pool-with-a-longish-name-${i}`,
      capacity: 1000,
      reserved: i % 1000,
      labels: { zone: "north", kind: "van", region: "eu-west-1" },
      window: {
        start: { seconds: 1_900_000_000, nanos: 0 },
        end: { seconds: 1_900_003_600, nanos: 0 },
      },
      version: 1_000_000 + i,
      confirmedAt: { seconds: 1_900_000_000, nanos: 123_000_000 },
    }),
  );
  const chunks = [...chunkBySize(all)];
  assert.ok(chunks.length > 1, "100k pools need more than one message");
  for (const chunk of chunks) {
    const bytes = internal.PushRequest.encode({ from: "worker-12", entries: chunk }).finish()
      .length;
    assert.ok(bytes < MAX_GOSSIP_MESSAGE_BYTES, `${bytes} bytes`);
  }
  assert.deepEqual(
    chunks.flat().map((c) => c.pool),
    all.map((c) => c.pool),
  );
});

test("an entry larger than the limit still gets a chunk of its own", () => {
  const big = internal.PoolCounters.fromPartial({ pool: "ns/big", labels: { k: "x".repeat(500) } });
  const small = internal.PoolCounters.fromPartial({ pool: "ns/small" });
  assert.deepEqual(
    [...chunkBySize([small, big, small], 300)].map((c) => c.map((e) => e.pool)),
    [["ns/small"], ["ns/big"], ["ns/small"]],
  );
});
