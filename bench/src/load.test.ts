// The in-process load generator's loops (load.ts): counts and failure accounting only;
// no timing is asserted (the machine is shared).
import assert from "node:assert/strict";
import { test } from "node:test";
import { runLoad, runOpenLoop } from "./load.js";

test("closed loop by count runs every index once, with at most `concurrency` in flight", async () => {
  const seen = new Set<number>();
  let inFlight = 0;
  let peak = 0;
  const r = await runLoad({
    total: 200,
    concurrency: 8,
    call: async (i) => {
      seen.add(i);
      peak = Math.max(peak, ++inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      if (i % 10 === 0) throw new Error("boom");
    },
  });
  assert.equal(seen.size, 200);
  assert.ok(peak <= 8);
  assert.equal(r.ok + r.failed, 200);
  assert.equal(r.failed, 20);
  assert.equal(r.failures.get("boom"), 20);
});

test("closed loop by duration stops on its own", async () => {
  const r = await runLoad({
    seconds: 0.2,
    concurrency: 4,
    call: () => new Promise((r) => setImmediate(r)),
  });
  assert.ok(r.ok > 0);
  assert.equal(r.failed, 0);
});

test("open loop sends on schedule without waiting for replies", async () => {
  // Every call hangs until released: a closed loop would send `concurrency` and stop;
  // the open loop sends all rate × seconds of them regardless.
  const release: (() => void)[] = [];
  const done = runOpenLoop({
    rate: 200,
    seconds: 0.25,
    call: () => new Promise<void>((r) => release.push(r)),
  });
  while (release.length < 50) await new Promise((r) => setTimeout(r, 5));
  for (const r of release) r();
  const r = await done;
  assert.equal(r.ok, 50);
  assert.equal(r.failed, 0);
});

test("open loop with maxInFlight queues the rest and sends each as a slot frees", async () => {
  const release: (() => void)[] = [];
  let peak = 0;
  let inFlight = 0;
  const done = runOpenLoop({
    rate: 400,
    seconds: 0.1,
    maxInFlight: 10,
    call: () =>
      new Promise<void>((r) => {
        peak = Math.max(peak, ++inFlight);
        release.push(() => {
          inFlight--;
          r();
        });
      }),
  });
  // Release one at a time until all 40 have been sent and answered.
  let released = 0;
  while (released < 40) {
    const next = release[released];
    if (next) {
      next();
      released++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const r = await done;
  assert.equal(r.ok, 40);
  assert.equal(r.failed, 0);
  assert.ok(peak <= 10, `peak ${peak}`);
});
