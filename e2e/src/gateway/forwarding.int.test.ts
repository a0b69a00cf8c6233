// The gateway's forwarding policy against a REAL worker (startWorker) on a real SQLite
// journal, in this process over real gRPC on loopback: an owner that is alive but slow
// is waited for (one attempt, up to the caller's deadline), never sent the call twice.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CapacityServiceClient } from "@berth/common";
import { type RunningGateway, startGateway } from "@berth/gateway";
import { shardMapAllOwnedBy, unary } from "@berth/gateway/testing";
import { internal, StaticShardMapSource, v1 } from "@berth/proto";
import {
  type Journal,
  type LoadedPool,
  openJournal,
  type RunningWorker,
  startWorker,
} from "@berth/worker";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { Registry } from "prom-client";

/** Longer than the 2 s per-attempt timeout the gateway used to resend after. */
const SLOW_APPEND_MS = 3000;

/**
 * A real journal whose appends of events take {@link SLOW_APPEND_MS} longer while
 * `slow` is set: an owner that works, slowly (a loaded machine, a slow disk).
 */
class SlowJournal implements Journal {
  slow = false;
  eventAppends = 0;
  readonly maxAppendEvents?: number;
  constructor(private readonly inner: Journal) {
    if (inner.maxAppendEvents !== undefined) this.maxAppendEvents = inner.maxAppendEvents;
  }
  fence(pool: string, shard: number, epoch: number): Promise<void> {
    return this.inner.fence(pool, shard, epoch);
  }
  load(pool: string): Promise<LoadedPool> {
    return this.inner.load(pool);
  }
  /** Resolves when the next slow append has begun (its events are held). */
  slowAppendStarted: Promise<void> = Promise.resolve();
  #started: (() => void) | undefined;
  /** From now on, appends of events are slow; {@link slowAppendStarted} says when one is held. */
  beginSlow(): void {
    this.slow = true;
    this.slowAppendStarted = new Promise((resolve) => {
      this.#started = resolve;
    });
  }
  async append(target: Parameters<Journal["append"]>[0], events: readonly unknown[]) {
    if (events.length > 0) this.eventAppends++;
    if (this.slow && events.length > 0) {
      this.#started?.();
      await sleep(SLOW_APPEND_MS);
    }
    return this.inner.append(target, events);
  }
  saveSnapshot(pool: string, snapshot: Parameters<Journal["saveSnapshot"]>[1]): Promise<void> {
    return this.inner.saveSnapshot(pool, snapshot);
  }
  listPools(shard: number): Promise<string[]> {
    return this.inner.listPools(shard);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const silent = pino({ level: "silent" });
const dir = mkdtempSync(join(tmpdir(), "berth-forwarding-"));
const pool = "default/slow-pool";
const maps = new StaticShardMapSource();
const registry = new Registry();
let journal: SlowJournal;
let worker: RunningWorker;
let gateway: RunningGateway;
let client: CapacityServiceClient;

before(async () => {
  journal = new SlowJournal(await openJournal(`sqlite://${join(dir, "journal.db")}`));
  worker = await startWorker({
    id: "worker-0",
    grpc: "127.0.0.1:0",
    journal,
    shardMapSource: maps,
    logger: silent,
  });
  maps.set(
    shardMapAllOwnedBy({
      revision: 1,
      owner: "worker-0",
      epoch: 1,
      members: [{ id: "worker-0", address: worker.address }],
    }),
  );
  await worker.whenReady();
  // The gateway's own forwarding defaults: nothing tuned for the test.
  gateway = await startGateway({
    grpc: "127.0.0.1:0",
    gossip: "127.0.0.1:0",
    http: "127.0.0.1:0",
    shardMapSource: maps,
    logger: silent,
    registry,
  });
  client = new CapacityServiceClient(gateway.grpcAddress, grpc.credentials.createInsecure());
  await gateway.router.call(
    "configure",
    pool,
    internal.PoolSpec.fromPartial({ pool, capacity: 10, generation: 1 }),
    Date.now() + 30_000,
  );
});

after(async () => {
  client?.close();
  await gateway?.close();
  await worker?.close();
  await journal?.close();
  maps.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("forwarding to an owner that is alive but slow", () => {
  test("a reserve the owner takes longer than 2 s to commit is sent once and succeeds within the caller's deadline", {
    timeout: 60_000,
  }, async () => {
    const appendsBefore = journal.eventAppends;
    journal.slow = true;
    let response: v1.ReserveResponse;
    try {
      response = await unary(
        client,
        client.reserve,
        v1.ReserveRequest.fromPartial({ pool, units: 2, requestId: "slow-1" }),
        30_000,
      );
    } finally {
      journal.slow = false;
    }
    // Each command a Forward stream carries is counted in berth_requests_total.
    const handled = await worker.registry.getSingleMetricAsString("berth_requests_total");
    const reserves = [
      ...handled.matchAll(/berth_requests_total\{[^}]*method="Reserve"[^}]*\} (\d+)/g),
    ].reduce((n, m) => n + Number(m[1]), 0);
    assert.equal(reserves, 1, `the worker answered ${reserves} Reserve attempts:\n${handled}`);
    assert.equal(journal.eventAppends - appendsBefore, 1, "one append of the reservation");
    assert.equal(response.units, 2);
    assert.equal(response.replayed, false);
    const retries = await registry.getSingleMetricAsString("berth_gateway_forward_retries_total");
    assert.doesNotMatch(retries, /berth_gateway_forward_retries_total\{[^}]*\} [1-9]/, retries);
  });

  test("a command whose deadline passes while it waits behind a slow append writes nothing, and the caller hears UNAVAILABLE in time", {
    timeout: 60_000,
  }, async () => {
    const appendsBefore = journal.eventAppends;
    const expiredBefore = await reserveOutcomes("deadline_exceeded");
    journal.beginSlow();
    try {
      const first = unary(
        client,
        client.reserve,
        v1.ReserveRequest.fromPartial({ pool, units: 1, requestId: "slow-first" }),
        30_000,
      );
      // Queued on the entity behind the first one's append (held now), with far less time.
      await journal.slowAppendStarted;
      const queued = await unary(
        client,
        client.reserve,
        v1.ReserveRequest.fromPartial({ pool, units: 1, requestId: "slow-queued" }),
        1000,
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.equal((queued as grpc.ServiceError | undefined)?.code, grpc.status.UNAVAILABLE);
      assert.equal((await first).units, 1);
    } finally {
      journal.slow = false;
    }
    // The worker decided the queued one only after its deadline: expired, not written.
    assert.equal((await reserveOutcomes("deadline_exceeded")) - expiredBefore, 1);
    assert.equal(journal.eventAppends - appendsBefore, 1, "only the first reserve was appended");
  });
});

/** berth_requests_total{method="Reserve", outcome} on the worker. */
async function reserveOutcomes(outcome: string): Promise<number> {
  const text = await worker.registry.getSingleMetricAsString("berth_requests_total");
  const re = new RegExp(
    `berth_requests_total\\{[^}]*method="Reserve"[^}]*outcome="${outcome}"[^}]*\\} (\\d+)`,
  );
  return Number(re.exec(text)?.[1] ?? 0);
}
