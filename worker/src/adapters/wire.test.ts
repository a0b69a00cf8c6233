import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { windowToWire } from "./wire.js";

describe("windowToWire", () => {
  test("one domain window has one wire form; another window its own", () => {
    const w = Object.freeze({ startMs: 1_000, endMs: 2_500 });
    const wire = windowToWire(w);
    assert.deepEqual(wire, {
      start: { seconds: 1, nanos: 0 },
      end: { seconds: 2, nanos: 500_000_000 },
    });
    assert.ok(windowToWire(w) === wire, "made once per domain window");
    assert.ok(Object.isFrozen(wire) && Object.isFrozen(wire?.start) && Object.isFrozen(wire?.end));
    assert.deepEqual(windowToWire({ startMs: 1_000, endMs: 2_501 }), {
      start: { seconds: 1, nanos: 0 },
      end: { seconds: 2, nanos: 501_000_000 },
    });
    assert.equal(windowToWire(undefined), undefined);
  });
});
