import assert from "node:assert/strict";
import { test } from "node:test";
import { LogThrottle } from "./log-throttle.js";

function clocked() {
  let now = 0;
  const throttle = new LogThrottle(1_000, () => now);
  return { throttle, advance: (ms: number) => (now += ms) };
}

test("the first failure is logged, repeats within the interval are counted, not logged", () => {
  const { throttle, advance } = clocked();
  assert.deepEqual(throttle.failure("connection refused"), { log: true, suppressed: 0 });
  advance(400);
  assert.deepEqual(throttle.failure("connection refused"), { log: false, suppressed: 1 });
  advance(400);
  assert.deepEqual(throttle.failure("connection refused"), { log: false, suppressed: 2 });
  advance(200);
  assert.deepEqual(throttle.failure("connection refused"), { log: true, suppressed: 2 });
});

test("a different message is logged at once", () => {
  const { throttle, advance } = clocked();
  throttle.failure("connection refused");
  advance(10);
  assert.equal(throttle.failure("connection refused").log, false);
  assert.deepEqual(throttle.failure("HTTP 403 forbidden"), { log: true, suppressed: 1 });
});

test("recovered() reports the length of the streak it ends, and the next failure is logged", () => {
  const { throttle, advance } = clocked();
  assert.equal(throttle.recovered(), 0);
  throttle.failure("connection refused");
  throttle.failure("connection refused");
  throttle.failure("connection refused");
  assert.equal(throttle.recovered(), 3);
  assert.equal(throttle.recovered(), 0);
  advance(1);
  assert.deepEqual(throttle.failure("connection refused"), { log: true, suppressed: 0 });
});
