// The owner Router (gateway/src/router.ts) against REAL workers (startWorker from
// @berth/worker) sharing a real SQLite journal in a temp dir, in this process over real
// gRPC on loopback: the cases where every worker behaves as a worker does — the command
// goes to the shard's owner with the shard's epoch and the caller's deadline, a map
// change is followed, the owner's answers pass through. What a worker gave its ownership
// layer is recorded on the way (the real call goes on). The cases that script a fault
// (an owner that hangs, freezes, dies or answers a chosen error) stay with scripted
// servers in gateway/src/router.int.test.ts.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { parseRichStatus } from "@berth/common";
import { Router } from "@berth/gateway";
import { shardMapAllOwnedBy } from "@berth/gateway/testing";
import { internal, StaticShardMapSource, v1 } from "@berth/proto";
import { openJournal, type RunningWorker, startWorker } from "@berth/worker";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { Registry } from "prom-client";
import { eventually } from "../acceptance/clients.js";

const silent = pino({ level: "silent" });
const pool = "default/van-north";
const request = v1.ReserveRequest.fromPartial({ pool, units: 3, requestId: "req-1" });
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** One command a worker's ownership layer was given, and how it came out. */
interface Executed {
  readonly pool: string;
  /** The entity command's type: reserve, read, configure, … */
  readonly type: string;
  /** The command's absolute deadline (epoch ms) as the worker took it from the call. */
  readonly deadline: number | undefined;
  /** The shard epoch the caller sent. */
  readonly callerEpoch: number | undefined;
  /** The outcome's kind (ok, view, not_owner, …), once answered. */
  outcome?: string;
}

/** A real worker, and every command it executed since it started. */
interface Worker {
  readonly id: string;
  readonly running: RunningWorker;
  readonly executed: Executed[];
}

/**
 * Starts real workers `ids` on one fresh SQLite journal, following `maps` (the workers'
 * ShardMap, set by the test once their addresses are known). Stopped after the file.
 */
async function startWorkers(
  ids: readonly string[],
): Promise<{ workers: Worker[]; maps: StaticShardMapSource }> {
  const dir = mkdtempSync(join(tmpdir(), "berth-router-"));
  const maps = new StaticShardMapSource();
  const workers: Worker[] = [];
  const journals: { close(): Promise<void> }[] = [];
  cleanups.push(async () => {
    for (const w of workers) await w.running.close();
    for (const j of journals) await j.close();
    maps.close();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const id of ids) {
    const journal = await openJournal(`sqlite://${join(dir, "journal.db")}`);
    journals.push(journal);
    const running = await startWorker({
      id,
      grpc: "127.0.0.1:0",
      journal,
      shardMapSource: maps,
      logger: silent,
    });
    workers.push({ id, running, executed: recordExecuted(running) });
  }
  return { workers, maps };
}

/**
 * Real workers `ids` serving every shard from `owner` at `epoch` (ShardMap `revision`),
 * each having recovered what it owns; the test pool is configured with `capacity` when
 * given.
 */
async function servedBy(
  ids: readonly string[],
  owned: { readonly owner: string; readonly epoch: number; readonly revision: number },
  capacity?: number,
): Promise<{ workers: Worker[]; maps: StaticShardMapSource; map: internal.ShardMap }> {
  const { workers, maps } = await startWorkers(ids);
  const map = shardMapAllOwnedBy({ ...owned, members: membersOf(workers) });
  await assign(workers, maps, map);
  if (capacity !== undefined) await configure(maps, capacity);
  return { workers, maps, map };
}

/** Records each command `worker` routes through its ownership layer, then runs it. */
function recordExecuted(worker: RunningWorker): Executed[] {
  const executed: Executed[] = [];
  const ownership = worker.ownership;
  const execute = ownership.execute.bind(ownership);
  ownership.execute = (async (poolId, command, deadline, callerEpoch) => {
    const entry: Executed = { pool: poolId, type: command.type, deadline, callerEpoch };
    executed.push(entry);
    const result = await execute(poolId, command, deadline, callerEpoch);
    entry.outcome = result.outcome.kind;
    return result;
  }) as typeof ownership.execute;
  return executed;
}

/** The members of a ShardMap naming `workers` at their addresses. */
function membersOf(workers: readonly Worker[]): { id: string; address: string }[] {
  return workers.map((w) => ({ id: w.id, address: w.running.address }));
}

/** Sets the workers' map and waits until every worker has recovered what it owns. */
async function assign(
  workers: readonly Worker[],
  maps: StaticShardMapSource,
  map: internal.ShardMap,
): Promise<void> {
  maps.set(map);
  await Promise.all(workers.map((w) => w.running.whenReady()));
}

function router(source: StaticShardMapSource, registry?: Registry): Router {
  const r = new Router({ source, logger: silent, ...(registry ? { registry } : {}) });
  cleanups.push(() => r.close());
  return r;
}

/** Configures `pool` with `capacity` units through a router that follows the workers' own map. */
async function configure(maps: StaticShardMapSource, capacity: number): Promise<void> {
  const setup = router(maps);
  await setup.call(
    "configure",
    pool,
    internal.PoolSpec.fromPartial({ pool, capacity, generation: 1 }),
    Date.now() + 10_000,
  );
  setup.close();
}

/** The commands of `type` (a worker's entity command type) that `worker` executed. */
function executedOf(worker: Worker | undefined, type: string): Executed[] {
  return worker?.executed.filter((e) => e.type === type) ?? [];
}

/** The call's rejection; fails the test when it succeeds. */
function rejection(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    (r) => assert.fail(`expected the call to fail, got ${JSON.stringify(r)}`),
    (e: unknown) => e,
  );
}

/** `berth_gateway_forward_retries_total` on `registry`, by reason (a reason never counted is absent). */
async function retries(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric("berth_gateway_forward_retries_total")?.get();
  return Object.fromEntries((metric?.values ?? []).map((v) => [v.labels.reason, v.value]));
}

describe("Router against real workers", () => {
  test("it sends a command to the shard's owner with the shard's epoch, and the owner commits it", async () => {
    const { workers, map } = await servedBy(
      ["w-a", "w-b"],
      { owner: "w-b", epoch: 7, revision: 1 },
      10,
    );
    const [a, b] = workers;
    const r = router(new StaticShardMapSource(map));

    const response = await r.call("reserve", pool, request, Date.now() + 10_000);
    assert.equal(response.pool, pool);
    assert.equal(response.units, 3);
    assert.equal(response.replayed, false);
    assert.notEqual(response.reservationId, "");
    assert.deepEqual(
      executedOf(b, "reserve").map((e) => [e.pool, e.callerEpoch, e.outcome]),
      [[pool, 7, "ok"]],
    );
    assert.deepEqual(executedOf(a, "reserve"), [], "a member that is not the owner was asked");

    const state = await r.call("getPool", pool, { pool }, Date.now() + 10_000);
    assert.equal(state.pool?.owner, "w-b");
    assert.equal(state.pool?.epoch, 7);
    assert.equal(state.pool?.reserved, 3);
  });

  test("it propagates the caller's deadline to the worker", async () => {
    const { workers, map } = await servedBy(["w-a"], { owner: "w-a", epoch: 1, revision: 1 }, 10);
    // Generous: the bound is the caller's deadline however long the call takes.
    const deadline = Date.now() + 10_000;
    await router(new StaticShardMapSource(map)).call("reserve", pool, request, deadline);
    const [seen] = executedOf(workers[0], "reserve");
    assert.ok(seen?.deadline !== undefined, "the worker got no deadline");
    assert.ok(
      seen.deadline <= deadline,
      `worker deadline ${seen.deadline} is after the caller's ${deadline}`,
    );
  });

  test("it applies the 5 s default budget when the caller set no deadline", async () => {
    const { workers, map } = await servedBy(["w-a"], { owner: "w-a", epoch: 1, revision: 1 }, 10);
    const r = router(new StaticShardMapSource(map));
    const before = Date.now();
    await r.call("reserve", pool, request, Number.POSITIVE_INFINITY);
    const after = Date.now();
    // The call's 5 s, less the router's margin (at most 250 ms), counted from some
    // moment within the call: bounds that hold however slow the machine is.
    const seen = executedOf(workers[0], "reserve")[0]?.deadline ?? Number.POSITIVE_INFINITY;
    assert.ok(
      seen > before + 4000 && seen <= after + 5000,
      `worker deadline ${seen - before} ms after the call started, ${seen - after} ms after it ended`,
    );
  });

  test("after the old owner's NOT_OWNER it follows the ShardMap change to the new owner and succeeds", async () => {
    const { workers, maps } = await startWorkers(["w-a", "w-b"]);
    const [a, b] = workers;
    const members = membersOf(workers);
    const before = shardMapAllOwnedBy({ revision: 1, owner: "w-a", epoch: 1, members });
    await assign(workers, maps, before);
    await configure(maps, 10);
    // The workers hand every shard to w-b; the router still routes to w-a.
    const moved = shardMapAllOwnedBy({ revision: 2, owner: "w-b", epoch: 2, members });
    await assign(workers, maps, moved);
    const source = new StaticShardMapSource(before);
    const registry = new Registry();
    const pending = router(source, registry).call("reserve", pool, request, Date.now() + 30_000);

    await eventually("w-a is asked again after its NOT_OWNER", async () => {
      return executedOf(a, "reserve").length >= 2;
    });
    assert.ok(
      executedOf(a, "reserve").every((e) => e.outcome === undefined || e.outcome === "not_owner"),
    );
    assert.deepEqual(executedOf(b, "reserve"), [], "w-b was asked before the router knew");
    source.set(moved);

    const response = await pending;
    assert.equal(response.pool, pool);
    assert.equal(response.units, 3);
    assert.equal(response.replayed, false);
    assert.deepEqual(
      executedOf(b, "reserve").map((e) => [e.callerEpoch, e.outcome]),
      [[2, "ok"]],
    );
    assert.ok(((await retries(registry)).not_owner ?? 0) >= 1);
    const state = await router(source).call("getPool", pool, { pool }, Date.now() + 10_000);
    assert.equal(state.pool?.owner, "w-b");
    assert.equal(state.pool?.reserved, 3);
  });

  test("a shard that gets an owner while a call waits is served within the deadline", async () => {
    const { workers, map: owned } = await servedBy(
      ["w-a"],
      { owner: "w-a", epoch: 1, revision: 2 },
      10,
    );
    const source = new StaticShardMapSource(
      shardMapAllOwnedBy({ revision: 1, owner: "", epoch: 0, members: [] }),
    );
    const registry = new Registry();
    const pending = router(source, registry).call("reserve", pool, request, Date.now() + 30_000);
    await eventually(
      "the router has found the shard without an owner",
      async () => (await retries(registry)).no_owner !== undefined,
    );
    assert.deepEqual(executedOf(workers[0], "reserve"), []);
    source.set(owned);

    const response = await pending;
    assert.equal(response.pool, pool);
    assert.equal(response.units, 3);
    assert.deepEqual(
      executedOf(workers[0], "reserve").map((e) => [e.callerEpoch, e.outcome]),
      [[1, "ok"]],
    );
  });

  test("a domain rejection passes through unchanged with its details, and is not retried", async () => {
    const { workers, map } = await servedBy(["w-a"], { owner: "w-a", epoch: 1, revision: 1 }, 2);
    const registry = new Registry();
    const err = await rejection(
      router(new StaticShardMapSource(map), registry).call(
        "reserve",
        pool,
        request,
        Date.now() + 10_000,
      ),
    );
    const s = parseRichStatus(err);
    assert.equal(s.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(s.reason, "INSUFFICIENT_CAPACITY");
    assert.equal(s.domain, "berth.dev");
    assert.equal(s.message, "pool default/van-north has 2 of 2 units available; 3 requested");
    assert.deepEqual(s.metadata, { available: "2" });
    assert.equal(executedOf(workers[0], "reserve").length, 1, "a domain rejection was retried");
    assert.deepEqual(await retries(registry), {}, "the router counted a retry");
  });

  test("NOT_FOUND for a pool never configured passes through without a retry", async () => {
    const { workers, map } = await servedBy(["w-a"], { owner: "w-a", epoch: 1, revision: 1 });
    const registry = new Registry();
    const err = await rejection(
      router(new StaticShardMapSource(map), registry).call(
        "getPool",
        pool,
        { pool },
        Date.now() + 10_000,
      ),
    );
    const s = parseRichStatus(err);
    assert.equal(s.code, grpc.status.NOT_FOUND);
    assert.equal(s.reason, "POOL_NOT_FOUND");
    assert.deepEqual(s.metadata, { pool });
    assert.equal(executedOf(workers[0], "read").length, 1, "NOT_FOUND was retried");
    assert.deepEqual(await retries(registry), {}, "the router counted a retry");
  });
});
