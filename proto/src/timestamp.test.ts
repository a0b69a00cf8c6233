import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { timestampMs, timestampOf } from "./timestamp.js";

test("epoch milliseconds survive a round trip through a Timestamp", () => {
  fc.assert(
    fc.property(fc.integer({ min: -62_135_596_800_000, max: 253_402_300_799_999 }), (ms) => {
      const t = timestampOf(ms);
      assert.ok(t.nanos >= 0 && t.nanos < 1_000_000_000 && Number.isInteger(t.nanos));
      assert.equal(timestampMs(t), ms);
    }),
  );
});

test("a Timestamp's sub-millisecond part is dropped, before the epoch too, and an absent one has no milliseconds", () => {
  assert.deepEqual(timestampOf(-1), { seconds: -1, nanos: 999_000_000 });
  assert.equal(timestampMs({ seconds: 1, nanos: 1_999_999 }), 1001);
  assert.equal(timestampMs({ seconds: -1, nanos: 999_999_999 }), -1);
  assert.equal(timestampMs(undefined), undefined);
});
