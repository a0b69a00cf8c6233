import assert from "node:assert/strict";
import { test } from "node:test";
import { RestartBackoff } from "./backoff.js";

test("restart delays double from one second up to the cap", () => {
  const b = new RestartBackoff({ maxMs: 10_000 });
  assert.deepEqual(
    Array.from({ length: 6 }, () => b.next(100)),
    [1000, 2000, 4000, 8000, 10_000, 10_000],
  );
});

test("a process that stayed up long enough is restarted after the first delay again", () => {
  const b = new RestartBackoff({ initialMs: 1000, resetAfterMs: 5000 });
  b.next(0);
  b.next(0);
  assert.equal(b.next(4999), 4000);
  assert.equal(b.next(5000), 1000);
  assert.equal(b.next(10), 2000);
});
