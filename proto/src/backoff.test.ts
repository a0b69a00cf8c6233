import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type BackoffPolicy, backoffDelayMs } from "./backoff.js";

const none: BackoffPolicy = { initialMs: 100, maxMs: 1000, jitter: "none" };

test("without jitter the delay doubles from the first one up to the cap", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 100].map((a) => backoffDelayMs(a, none)),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
});

test("attempts below 1 count as the first, and huge ones stay at the cap", () => {
  assert.equal(backoffDelayMs(0, none), 100);
  assert.equal(backoffDelayMs(-3, none), 100);
  assert.equal(backoffDelayMs(Number.MAX_SAFE_INTEGER, none), 1000);
  assert.equal(backoffDelayMs(5000, { initialMs: 0, maxMs: 10, jitter: "none" }), 0);
});

test("equal jitter is half fixed, half random: d/2 at random 0, approaching d at random 1", () => {
  const equal: BackoffPolicy = { ...none, jitter: "equal" };
  assert.equal(
    backoffDelayMs(3, equal, () => 0),
    200,
  );
  assert.equal(
    backoffDelayMs(3, equal, () => 0.5),
    300,
  );
  assert.equal(
    backoffDelayMs(9, equal, () => 0.5),
    750,
  );
});

test("full jitter is uniform from 0 to the delay", () => {
  const full: BackoffPolicy = { ...none, jitter: "full" };
  assert.equal(
    backoffDelayMs(2, full, () => 0),
    0,
  );
  assert.equal(
    backoffDelayMs(2, full, () => 0.25),
    50,
  );
});

test("no jitter draws no random number", () => {
  backoffDelayMs(2, none, () => assert.fail("random was called"));
});

test("every delay lies within the jitter's bounds of the capped exponential", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 200 }),
      fc.integer({ min: 0, max: 10_000 }),
      fc.integer({ min: 0, max: 100_000 }),
      fc.constantFrom("none", "equal", "full") as fc.Arbitrary<BackoffPolicy["jitter"]>,
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (attempt, initialMs, maxMs, jitter, r) => {
        const d = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
        const delay = backoffDelayMs(attempt, { initialMs, maxMs, jitter }, () => r);
        const [lo, hi] = jitter === "none" ? [d, d] : jitter === "equal" ? [d / 2, d] : [0, d];
        assert.ok(delay >= lo && delay <= hi, `${delay} in [${lo}, ${hi}]`);
      },
    ),
  );
});
