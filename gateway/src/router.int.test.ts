// The Router against small but real grpc-js WorkerService servers on loopback
// (FakeWorker) scripted with the faults a real worker cannot be made to show on cue: an
// owner that recovers, hangs, freezes, dies mid-call, loses its journal, or fails below
// Berth (a reset stream, INTERNAL or UNKNOWN without a reason). Where no fault is scripted
// (routing to the owner with its epoch, deadlines, following a map change, the owner's
// own answers passed through) the Router is tested against real workers in
// e2e/src/gateway/router-real-worker.int.test.ts.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { parseRichStatus, richStatus } from "@berth/common";
import { StaticShardMapSource, v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { Registry } from "prom-client";
import { Router } from "./router.js";
import {
  FakeWorker,
  FreezableProxy,
  reserved,
  shardMapAllOwnedBy,
  wireDetails,
} from "./test-support.js";

const pool = "default/van-north";
const request = v1.ReserveRequest.fromPartial({ pool, units: 3, requestId: "req-1" });
const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

async function worker(behaviour: ConstructorParameters<typeof FakeWorker>[0]): Promise<FakeWorker> {
  const w = await new FakeWorker(behaviour).start();
  cleanups.push(() => w.stop());
  return w;
}

function router(source: StaticShardMapSource, registry?: Registry): Router {
  const r = new Router({
    source,
    ...(registry ? { registry } : {}),
  });
  cleanups.push(() => r.close());
  return r;
}

/** A free loopback port nothing listens on: bound, then released. */
async function closedAddress(): Promise<string> {
  const w = await new FakeWorker(() => ({})).start();
  w.stop();
  return w.address;
}

describe("Router", () => {
  test("it retries an owner that is recovering until it serves", async () => {
    let refusals = 3;
    const a = await worker(() =>
      refusals-- > 0
        ? {
            error: richStatus(grpc.status.UNAVAILABLE, "shard 0 is recovering", {
              reason: "SHARD_RECOVERING",
              retryDelayMs: 10,
            }),
          }
        : reserved(pool, 3),
    );
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({
        revision: 1,
        owner: "w-a",
        epoch: 1,
        members: [{ id: "w-a", address: a.address }],
      }),
    );
    const response = await router(source).call("reserve", pool, request, Date.now() + 5000);
    assert.deepEqual(response, reserved(pool, 3));
    assert.equal(a.calls.length, 4);
  });

  test("it answers UNAVAILABLE with RetryInfo and OWNER_UNAVAILABLE when the owner never answers in time", async () => {
    const address = await closedAddress();
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({
        revision: 1,
        owner: "w-a",
        epoch: 1,
        members: [{ id: "w-a", address }],
      }),
    );
    const err = await router(source)
      .call("reserve", pool, request, Date.now() + 600)
      .then(
        () => assert.fail("expected UNAVAILABLE"),
        (e: unknown) => e,
      );
    const s = parseRichStatus(err);
    assert.equal(s.code, grpc.status.UNAVAILABLE);
    assert.equal(s.reason, "OWNER_UNAVAILABLE");
    assert.match(
      s.message,
      /no owner of pool "default\/van-north" answered within the deadline: owner w-a/,
    );
    assert.ok((s.retryDelayMs ?? 0) > 0);
    assert.ok((wireDetails(err).retryDelayMs ?? 0) > 0);
  });

  test("an owner that is alive but never answers is sent the command once, and the call answers UNAVAILABLE at its deadline", async () => {
    const a = await worker(() => "hang");
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({
        revision: 1,
        owner: "w-a",
        epoch: 1,
        members: [{ id: "w-a", address: a.address }],
      }),
    );
    const registry = new Registry();
    const err = await router(source, registry)
      .call("getPool", pool, { pool }, Date.now() + 1500)
      .then(
        () => assert.fail("expected UNAVAILABLE"),
        (e: unknown) => e,
      );
    const s = parseRichStatus(err);
    assert.equal(s.code, grpc.status.UNAVAILABLE);
    assert.equal(s.reason, "OWNER_UNAVAILABLE");
    assert.match(s.message, /owner w-a \(.*\) of shard \d+ did not answer in time/);
    assert.equal(a.calls.length, 1, "a live owner is waited for, not sent the command again");
    const metrics = await registry.getSingleMetricAsString("berth_gateway_forward_retries_total");
    assert.doesNotMatch(metrics, /\} [1-9]/);
  });

  test("an owner that freezes mid-call (keepalive pings unanswered) is detected and the command retried", async () => {
    const a = await worker(() => reserved(pool, 3));
    const proxy = await FreezableProxy.start(a.address);
    cleanups.push(() => proxy.close());
    a.behaviour = () => {
      // The process stops mid-call: its open connections go silent, pings included.
      proxy.freezeOpenConnections();
      a.behaviour = () => reserved(pool, 3);
      return "hang";
    };
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({
        revision: 1,
        owner: "w-a",
        epoch: 1,
        members: [{ id: "w-a", address: proxy.address }],
      }),
    );
    const registry = new Registry();
    const r = new Router({
      source,
      registry,
      channelOptions: { "grpc.keepalive_time_ms": 100, "grpc.keepalive_timeout_ms": 500 },
    });
    cleanups.push(() => r.close());
    const response = await r.call("reserve", pool, request, Date.now() + 30_000);
    assert.deepEqual(response, reserved(pool, 3));
    assert.equal(a.calls.length, 2);
    const metrics = await registry.getSingleMetricAsString("berth_gateway_forward_retries_total");
    assert.match(metrics, /reason="unreachable"\} 1\b/);
    const outages = await registry.getSingleMetricAsString("berth_gateway_owner_outages_total");
    assert.match(outages, /owner="w-a"[^}]*\} 1\b/);
  });

  test("a call waiting on an owner follows a ShardMap that moves the shard to another owner", async () => {
    const a = await worker(() => "hang");
    const b = await worker(() => reserved(pool, 3, 5));
    const members = [
      { id: "w-a", address: a.address },
      { id: "w-b", address: b.address },
    ];
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({ revision: 1, owner: "w-a", epoch: 1, members }),
    );
    a.behaviour = () => {
      setTimeout(
        () => source.set(shardMapAllOwnedBy({ revision: 2, owner: "w-b", epoch: 2, members })),
        20,
      );
      return "hang";
    };
    const registry = new Registry();
    const response = await router(source, registry).call(
      "reserve",
      pool,
      request,
      Date.now() + 60_000,
    );
    assert.deepEqual(response, reserved(pool, 3, 5));
    assert.equal(a.calls.length, 1);
    assert.equal(b.calls.length, 1);
    assert.equal(b.calls[0]?.epoch, 2);
    const metrics = await registry.getSingleMetricAsString("berth_gateway_forward_retries_total");
    assert.match(metrics, /reason="moved"\} 1\b/);
  });

  test("an owner whose journal is unavailable is retried, and the caller is told JOURNAL_UNAVAILABLE with the owner's RetryInfo", async () => {
    const a = await worker(() => ({
      error: richStatus(
        grpc.status.UNAVAILABLE,
        "pool default/van-north: the journal is unavailable",
        {
          reason: "JOURNAL_UNAVAILABLE",
          retryDelayMs: 250,
        },
      ),
    }));
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({
        revision: 1,
        owner: "w-a",
        epoch: 1,
        members: [{ id: "w-a", address: a.address }],
      }),
    );
    const registry = new Registry();
    const err = await router(source, registry)
      .call("reserve", pool, request, Date.now() + 1500)
      .then(
        () => assert.fail("expected UNAVAILABLE"),
        (e: unknown) => e,
      );
    const s = parseRichStatus(err);
    assert.equal(s.code, grpc.status.UNAVAILABLE);
    assert.equal(s.reason, "JOURNAL_UNAVAILABLE");
    assert.equal(s.domain, "berth.dev");
    assert.match(
      s.message,
      /^no owner of pool "default\/van-north" answered within the deadline: owner w-a .* answered: pool default\/van-north: the journal is unavailable$/,
    );
    assert.equal(wireDetails(err).retryDelayMs, 250);
    assert.ok(a.calls.length >= 2, `the owner was asked again, ${a.calls.length} calls`);
    const metrics = await registry.getSingleMetricAsString("berth_gateway_forward_retries_total");
    assert.match(metrics, /reason="unavailable"\} [1-9]/);
  });

  test("it answers UNAVAILABLE with NO_OWNER when the shard has no owner", async () => {
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({ revision: 1, owner: "", epoch: 0, members: [] }),
    );
    const err = await router(source)
      .call("reserve", pool, request, Date.now() + 300)
      .then(
        () => assert.fail("expected UNAVAILABLE"),
        (e: unknown) => e,
      );
    const s = parseRichStatus(err);
    assert.equal(s.code, grpc.status.UNAVAILABLE);
    assert.equal(s.reason, "NO_OWNER");
    assert.match(s.message, /shard \d+ has no owner in ShardMap revision 1/);
  });

  test("an aborted call stops retrying and answers CANCELLED", async () => {
    const a = await worker(() => "hang");
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({
        revision: 1,
        owner: "w-a",
        epoch: 1,
        members: [{ id: "w-a", address: a.address }],
      }),
    );
    const controller = new AbortController();
    const pending = router(source).call("reserve", pool, request, Date.now() + 60_000, {
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 50);
    const err = await pending.then(
      () => assert.fail("expected CANCELLED"),
      (e: unknown) => e,
    );
    assert.equal((err as { code: number }).code, grpc.status.CANCELLED);
  });

  test("a call its caller cancels says nothing of the owner: an outage in progress goes on, and is counted once", async () => {
    // Unreachable (no berth.dev reason), then alive but silent, then unreachable again,
    // then an answer: one outage, from the first failure to the answer.
    const script: ("unreachable" | "hang" | "answer")[] = ["unreachable", "hang", "unreachable"];
    const a = await worker(() => {
      const step = script.shift() ?? "answer";
      if (step === "hang") return "hang";
      if (step === "answer") return reserved(pool, 3);
      return {
        error: Object.assign(new Error("connection lost"), { code: grpc.status.UNAVAILABLE }),
      };
    });
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({
        revision: 1,
        owner: "w-a",
        epoch: 1,
        members: [{ id: "w-a", address: a.address }],
      }),
    );
    const registry = new Registry();
    const r = router(source, registry);
    const controller = new AbortController();
    const cancelled = r.call("reserve", pool, request, Date.now() + 60_000, {
      signal: controller.signal,
    });
    const rejected = cancelled.then(
      () => assert.fail("expected CANCELLED"),
      (e: unknown) => e,
    );
    // The second attempt is in flight at the owner, which does not answer: cancel it.
    while (a.calls.length < 2) await new Promise((res) => setTimeout(res, 5));
    controller.abort();
    assert.equal(((await rejected) as { code: number }).code, grpc.status.CANCELLED);

    const response = await r.call("reserve", pool, request, Date.now() + 5000);
    assert.deepEqual(response, reserved(pool, 3));
    assert.equal(a.calls.length, 4);
    const outages = await registry.getSingleMetricAsString("berth_gateway_owner_outages_total");
    assert.match(outages, /owner="w-a"[^}]*\} 1\b/);
  });

  test("a worker that dies mid-call (CANCELLED from forceShutdown) is retried at the shard's next owner", async () => {
    const b = await worker(() => reserved(pool, 3, 4));
    const a = await worker(() => "hang");
    const members = [
      { id: "w-a", address: a.address },
      { id: "w-b", address: b.address },
    ];
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({ revision: 1, owner: "w-a", epoch: 1, members }),
    );
    const registry = new Registry();
    const r = new Router({ source, registry });
    cleanups.push(() => r.close());
    a.behaviour = () => {
      setTimeout(() => {
        a.stop();
        source.set(shardMapAllOwnedBy({ revision: 2, owner: "w-b", epoch: 2, members }));
      }, 20);
      return "hang";
    };
    const response = await r.call("reserve", pool, request, Date.now() + 5000);
    assert.deepEqual(response, reserved(pool, 3, 4));
    assert.equal(a.calls.length, 1);
    assert.equal(b.calls.at(-1)?.epoch, 2);
    const metrics = await registry.getSingleMetricAsString("berth_gateway_forward_retries_total");
    // The stop and the map change race: the attempt fails as cut off, or is abandoned
    // for the new owner first.
    assert.match(metrics, /reason="(unreachable|moved)"\} [1-9]/);
  });

  test("CANCELLED, UNKNOWN and INTERNAL without a berth.dev reason are retried like UNAVAILABLE", async () => {
    const failures = [
      { code: grpc.status.INTERNAL, details: "Received RST_STREAM with code 2" },
      { code: grpc.status.UNKNOWN, details: "Unknown Error" },
      { code: grpc.status.CANCELLED, details: "Call cancelled" },
    ];
    const a = await worker(() => {
      const f = failures.shift();
      return f === undefined
        ? reserved(pool, 3)
        : { error: Object.assign(new Error(f.details), f) };
    });
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({
        revision: 1,
        owner: "w-a",
        epoch: 1,
        members: [{ id: "w-a", address: a.address }],
      }),
    );
    const response = await router(source).call("reserve", pool, request, Date.now() + 5000);
    assert.deepEqual(response, reserved(pool, 3));
    assert.equal(a.calls.length, 4);
  });

  test("an INTERNAL that carries a berth.dev reason is the owner's answer: passed through, not retried", async () => {
    const a = await worker(() => ({
      error: richStatus(grpc.status.INTERNAL, "the worker's own INTERNAL answer", {
        reason: "INVALID_FIELD",
        metadata: { field: "x" },
      }),
    }));
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({
        revision: 1,
        owner: "w-a",
        epoch: 1,
        members: [{ id: "w-a", address: a.address }],
      }),
    );
    const err = await router(source)
      .call("reserve", pool, request, Date.now() + 5000)
      .then(
        () => assert.fail("expected INTERNAL"),
        (e: unknown) => e,
      );
    const s = parseRichStatus(err);
    assert.equal(s.code, grpc.status.INTERNAL);
    assert.equal(s.reason, "INVALID_FIELD");
    assert.equal(s.message, "the worker's own INTERNAL answer");
    assert.equal(a.calls.length, 1);
  });

  test("a transport failure that keeps happening ends as UNAVAILABLE within the deadline", async () => {
    const a = await worker(() => ({
      error: Object.assign(new Error("Received RST_STREAM with code 2"), {
        code: grpc.status.INTERNAL,
        details: "Received RST_STREAM with code 2",
      }),
    }));
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({
        revision: 1,
        owner: "w-a",
        epoch: 1,
        members: [{ id: "w-a", address: a.address }],
      }),
    );
    const err = await router(source)
      .call("reserve", pool, request, Date.now() + 2_000)
      .then(
        () => assert.fail("expected UNAVAILABLE"),
        (e: unknown) => e,
      );
    const s = parseRichStatus(err);
    assert.equal(s.code, grpc.status.UNAVAILABLE);
    assert.equal(s.reason, "OWNER_UNAVAILABLE");
    assert.match(s.message, /INTERNAL: Received RST_STREAM with code 2/);
    assert.ok(a.calls.length >= 2);
  });
});
