import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { durationMs, durationOf, timestampMs, timestampMsCeil, timestampOf } from "./timestamp.js";

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

describe("timestampMsCeil and durationOf", () => {
  test("an end rounds up to the next millisecond; an absent end is open", () => {
    assert.equal(timestampMsCeil({ seconds: 1, nanos: 1 }), 1001);
    assert.equal(timestampMsCeil({ seconds: 1, nanos: 0 }), 1000);
    assert.equal(timestampMsCeil(undefined), Number.POSITIVE_INFINITY);
  });
  test("a duration of milliseconds to the nanosecond; a negative span is zero", () => {
    assert.deepEqual(durationOf(1500), { seconds: 1, nanos: 500_000_000 });
    assert.deepEqual(durationOf(-5), { seconds: 0, nanos: 0 });
    assert.deepEqual(durationOf(0.6), { seconds: 0, nanos: 600_000 });
    assert.deepEqual(durationOf(1999.9999999), { seconds: 2, nanos: 0 });
    assert.deepEqual(durationOf(Number.NaN), { seconds: 0, nanos: 0 });
  });
});

test("durationMs reads what durationOf writes", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 10 ** 12 }), (ms) => {
      assert.equal(durationMs(durationOf(ms)), ms);
    }),
  );
  assert.equal(durationMs({ seconds: 1, nanos: 500_000 }), 1000.5);
});
