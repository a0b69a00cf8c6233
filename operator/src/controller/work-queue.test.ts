import assert from "node:assert/strict";
import { test } from "node:test";
import { processQueue, WorkQueue } from "./work-queue.js";

test("a key added several times before it is taken is processed once", async () => {
  const q = new WorkQueue();
  q.add("a");
  q.add("b");
  q.add("a");
  assert.equal(q.depth, 2);
  assert.equal(await q.get(), "a");
  assert.equal(await q.get(), "b");
  assert.equal(q.depth, 0);
});

test("an urgent key queued behind others is handed out first; the rest keep their order", async () => {
  const q = new WorkQueue({ urgent: (k) => k === "shardmap" });
  for (const k of ["pool:a", "pool:b", "shardmap", "pool:c"]) q.add(k);
  assert.equal(q.depth, 4);
  const order = [await q.get(), await q.get(), await q.get(), await q.get()];
  assert.deepEqual(order, ["shardmap", "pool:a", "pool:b", "pool:c"]);
});

test("a key re-added while in flight is not handed to a second worker, and runs again after", async () => {
  const q = new WorkQueue();
  q.add("a");
  const first = await q.get();
  assert.equal(first, "a");
  q.add("a");
  assert.equal(q.depth, 0, "not queued while in flight");
  q.done("a");
  assert.equal(q.depth, 1, "queued again once done");
  assert.equal(await q.get(), "a");
});

test("a waiting get receives the next key added, and shutDown releases waiters", async () => {
  const q = new WorkQueue();
  const waiting = q.get();
  q.add("x");
  assert.equal(await waiting, "x");
  const more = q.get();
  q.shutDown();
  assert.equal(await more, undefined);
  q.add("y");
  assert.equal(await q.get(), undefined);
});

test("per-key backoff doubles on each failure up to the maximum, and forget resets it", () => {
  const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50, now: () => 0 });
  const delays: number[] = [];
  const spy = q as unknown as { addAfter: (k: string, ms: number) => void };
  spy.addAfter = (_k, ms) => delays.push(ms);
  for (let i = 0; i < 5; i++) q.addRateLimited("k");
  assert.deepEqual(delays, [10, 20, 40, 50, 50]);
  assert.equal(q.failuresOf("k"), 5);
  q.forget("k");
  q.addRateLimited("k");
  assert.equal(delays.at(-1), 10);
});

test("the overall retry rate is bounded by a token bucket once the burst is spent", () => {
  const q = new WorkQueue({ baseDelayMs: 1, retriesPerSecond: 10, retryBurst: 2, now: () => 0 });
  const delays: number[] = [];
  (q as unknown as { addAfter: (k: string, ms: number) => void }).addAfter = (_k, ms) =>
    delays.push(ms);
  for (const k of ["a", "b", "c", "d"]) q.addRateLimited(k);
  assert.deepEqual(delays, [1, 1, 100, 200]);
});

test("processQueue retries a failing key until it succeeds, then forgets its failures", async () => {
  const q = new WorkQueue({ baseDelayMs: 1 });
  let calls = 0;
  const errors: string[] = [];
  const run = processQueue(
    q,
    async (key) => {
      calls++;
      if (calls < 3) throw new Error(`boom ${calls}`);
      assert.equal(key, "pool");
      q.shutDown();
      return undefined;
    },
    { onError: (_k, e) => errors.push(String(e)) },
  );
  q.add("pool");
  await run;
  assert.equal(calls, 3);
  assert.deepEqual(errors, ["Error: boom 1", "Error: boom 2"]);
  assert.equal(q.failuresOf("pool"), 0);
});

test("processQueue never runs one key in two workers at once", async () => {
  const q = new WorkQueue();
  const inFlight = new Set<string>();
  let overlaps = 0;
  let runs = 0;
  const run = processQueue(
    q,
    async (key) => {
      if (inFlight.has(key)) overlaps++;
      inFlight.add(key);
      runs++;
      if (runs < 20) q.add(key); // re-added while in flight
      await new Promise((r) => setImmediate(r));
      inFlight.delete(key);
      if (runs >= 20) q.shutDown();
      return undefined;
    },
    { workers: 4 },
  );
  q.add("k");
  await run;
  assert.equal(overlaps, 0);
  assert.equal(runs, 20);
});
