// ForwardChannel (the gateway's Forward stream to one worker) against real grpc-js
// servers on loopback with scripted answers (FakeWorker). The worker's side of the
// stream, on a REAL worker, is e2e/src/gateway/forward-real-worker.int.test.ts.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { parseRichStatus } from "@berth/common";
import { v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { ForwardChannel, type ForwardError } from "./forward-channel.js";
import { classifyFailure, WORKER_CHANNEL_OPTIONS } from "./router.js";
import { FakeWorker, notOwner, reserved } from "./test-support.js";

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function fake(
  behaviour: ConstructorParameters<typeof FakeWorker>[0],
  options?: ConstructorParameters<typeof FakeWorker>[1],
): Promise<FakeWorker> {
  const w = await new FakeWorker(behaviour, options).start();
  cleanups.push(() => w.stop());
  return w;
}

function channel(address: string, options: { maxBatch?: number; maxBytes?: number } = {}) {
  const c = new ForwardChannel({
    address,
    credentials: grpc.credentials.createInsecure(),
    channelOptions: WORKER_CHANNEL_OPTIONS,
    ...options,
  });
  cleanups.push(() => c.close());
  return c;
}

interface Settled<R> {
  readonly err: ForwardError | null;
  readonly response: R | undefined;
  readonly times: number;
}

/** Sends one reserve; resolves on its first settlement and counts every settlement. */
function reserve(
  c: ForwardChannel,
  pool: string,
  units: number,
  requestId: string,
  deadline = Date.now() + 10_000,
): { settled: Promise<Settled<v1.ReserveResponse>>; times: () => number; cancel: () => void } {
  let times = 0;
  let ticket: { cancel(): void } | undefined;
  const settled = new Promise<Settled<v1.ReserveResponse>>((resolve) => {
    ticket = c.send(
      "reserve",
      v1.ReserveRequest.fromPartial({ pool, units, requestId }),
      1,
      `token-${requestId}`,
      deadline,
      (err, response) => {
        times++;
        resolve({ err, response, times });
      },
    );
  });
  return { settled, times: () => times, cancel: () => ticket?.cancel() };
}

/** Lets a few event-loop turns pass (late, duplicate settlements would show by then). */
const turns = (n = 5) =>
  new Array(n)
    .fill(0)
    .reduce<Promise<void>>((p) => p.then(() => new Promise(setImmediate)), Promise.resolve());

describe("ForwardChannel", () => {
  test("commands sent in one turn travel in one message, and each is answered once with its own answer", async () => {
    const w = await fake((call) => {
      const r = call.request as v1.ReserveRequest;
      return reserved(r.pool, r.units);
    });
    const c = channel(w.address);
    const sent = Array.from({ length: 200 }, (_, i) =>
      reserve(c, `default/pool-${i}`, 1 + (i % 7), `req-${i}`),
    );
    const results = await Promise.all(sent.map((s) => s.settled));
    await turns();
    results.forEach((r, i) => {
      assert.equal(r.err, null);
      assert.equal(r.response?.pool, `default/pool-${i}`);
      assert.equal(r.response?.units, 1 + (i % 7));
    });
    assert.deepEqual(
      sent.map((s) => s.times()),
      sent.map(() => 1),
    );
    assert.equal(w.calls.length, 200, "each command reached the worker once");
    assert.equal(w.forwardMessages, 1, "one ForwardRequest for the whole turn");
    assert.equal(w.forwardStreams, 1);
    assert.equal(w.calls[0]?.callToken, "token-req-0");
    assert.equal(w.calls[0]?.epoch, 1);
    assert.deepEqual(c.stats(), { streams: 1, messages: 1, commands: 200, unary: 0 });
    assert.equal(c.inFlight, 0);
  });

  test("a turn with more commands than a message may hold is split, by count and by bytes", async () => {
    const w = await fake((call) => reserved((call.request as v1.ReserveRequest).pool, 1));
    const byCount = channel(w.address, { maxBatch: 4 });
    const a = await Promise.all(
      Array.from({ length: 10 }, (_, i) => reserve(byCount, `default/a-${i}`, 1, `a-${i}`).settled),
    );
    assert.ok(a.every((r) => r.err === null));
    assert.equal(byCount.stats().messages, 3, "4 + 4 + 2");
    // A reserve of a 20-character pool with a short request id encodes to ~50 bytes.
    const byBytes = channel(w.address, { maxBytes: 200 });
    const b = await Promise.all(
      Array.from(
        { length: 12 },
        (_, i) =>
          reserve(byBytes, `default/b-pool-${String(i).padStart(4, "0")}`, 1, `b-${i}`).settled,
      ),
    );
    assert.ok(b.every((r) => r.err === null));
    assert.ok(byBytes.stats().messages >= 3, `messages: ${byBytes.stats().messages}`);
    assert.equal(byBytes.stats().commands, 12);
    assert.equal(w.calls.length, 22);
  });

  test("NOT_OWNER and domain errors in a batch keep their code, message and details; the rest succeed", async () => {
    const w = await fake((call) => {
      const r = call.request as v1.ReserveRequest;
      if (r.pool.endsWith("moved")) return notOwner(9, "w-b");
      if (r.pool.endsWith("full")) {
        return {
          error: Object.assign(new Error("no"), {
            code: grpc.status.NOT_FOUND,
            details: "pool default/x-full does not exist",
          }),
        };
      }
      return reserved(r.pool, r.units);
    });
    const c = channel(w.address);
    const [ok, moved, full] = await Promise.all([
      reserve(c, "default/x-ok", 2, "1").settled,
      reserve(c, "default/x-moved", 2, "2").settled,
      reserve(c, "default/x-full", 2, "3").settled,
    ]);
    assert.equal(w.forwardMessages, 1);
    assert.equal(ok?.err, null);
    const s = parseRichStatus(moved?.err);
    assert.equal(s.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(s.reason, "NOT_OWNER");
    assert.equal(s.metadata.epoch, "9");
    assert.equal(s.metadata.owner, "w-b");
    assert.deepEqual(classifyFailure(s), { kind: "retry", reason: "not_owner" });
    const f = parseRichStatus(full?.err);
    assert.equal(f.code, grpc.status.NOT_FOUND);
    assert.equal(f.message, "pool default/x-full does not exist");
    assert.deepEqual(classifyFailure(f), { kind: "answer" });
  });

  test("a command whose deadline passes settles DEADLINE_EXCEEDED once, with the time it had left sent along; the rest of its batch is answered", async () => {
    const w = await fake((call) => {
      const r = call.request as v1.ReserveRequest;
      return r.pool.endsWith("slow") ? "hang" : reserved(r.pool, 1);
    });
    const c = channel(w.address);
    const slow = reserve(c, "default/y-slow", 1, "slow", Date.now() + 300);
    const fast = reserve(c, "default/y-fast", 1, "fast");
    const [s, f] = await Promise.all([slow.settled, fast.settled]);
    assert.equal(f.err, null);
    assert.equal(s.err?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.deepEqual(classifyFailure(parseRichStatus(s.err)), { kind: "out_of_time" });
    const seen = w.calls.find((x) => (x.request as v1.ReserveRequest).pool === "default/y-slow");
    assert.ok(
      seen !== undefined && seen.deadlineMs <= Date.now() + 300,
      "the remaining time travelled",
    );
    await turns();
    assert.equal(slow.times(), 1);
    assert.equal(c.inFlight, 0);
  });

  test("a cancelled command settles CANCELLED once; the others of its batch are answered", async () => {
    const w = await fake((call) => {
      const r = call.request as v1.ReserveRequest;
      return r.pool.endsWith("hang") ? "hang" : reserved(r.pool, 1);
    });
    const c = channel(w.address);
    const hang = reserve(c, "default/z-hang", 1, "h");
    const ok = reserve(c, "default/z-ok", 1, "o");
    assert.equal((await ok.settled).err, null);
    hang.cancel();
    hang.cancel();
    const h = await hang.settled;
    assert.equal(h.err?.code, grpc.status.CANCELLED);
    await turns();
    assert.equal(hang.times(), 1);
  });

  test("a stream that breaks mid-batch fails every command on it once, as unreachable; the next command opens a new stream", async () => {
    const w = await fake(() => "hang");
    const c = channel(w.address);
    const sent = Array.from({ length: 20 }, (_, i) => reserve(c, `default/b-${i}`, 1, `b-${i}`));
    while (w.calls.length < 20) await new Promise((r) => setTimeout(r, 5));
    w.stop(); // forceShutdown: the connection goes away with the commands unanswered
    const results = await Promise.all(sent.map((s) => s.settled));
    await turns();
    for (const r of results) {
      assert.ok(r.err !== null);
      assert.deepEqual(classifyFailure(parseRichStatus(r.err)), {
        kind: "retry",
        reason: "unreachable",
      });
    }
    assert.deepEqual(
      sent.map((s) => s.times()),
      sent.map(() => 1),
    );
    // A new worker on the same address: the channel reconnects on demand.
    const again = await new FakeWorker((call) =>
      reserved((call.request as v1.ReserveRequest).pool, 1),
    ).start(w.address);
    cleanups.push(() => again.stop());
    let last: Settled<v1.ReserveResponse> | undefined;
    for (let i = 0; i < 50 && last?.err !== null; i++) {
      last = await reserve(c, "default/b-after", 1, "after").settled;
      if (last.err !== null) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(last?.err, null);
    assert.ok(c.stats().streams >= 2);
  });

  test("a worker without Forward (UNIMPLEMENTED) is sent the same commands as unary calls", async () => {
    const w = await fake((call) => reserved((call.request as v1.ReserveRequest).pool, 1), {
      forward: false,
    });
    const c = channel(w.address);
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => reserve(c, `default/u-${i}`, 1, `u-${i}`).settled),
    );
    assert.ok(results.every((r) => r.err === null));
    assert.equal(w.calls.length, 5, "each once");
    assert.equal(c.stats().unary, 5);
    assert.equal(w.calls[0]?.callToken, "token-u-0");
    const next = await reserve(c, "default/u-next", 1, "u-next").settled;
    assert.equal(next.err, null);
    assert.equal(c.stats().unary, 6);
  });
});
