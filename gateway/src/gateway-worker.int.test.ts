// The gateway in front of two REAL workers (startWorker from @berth/worker) sharing a
// real SQLite journal in a temp dir, all in this process over real gRPC on loopback.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { internal, parseRichStatus, StaticShardMapSource, v1 } from "@berth/proto";
import { openJournal, type RunningWorker, startWorker } from "@berth/worker";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { type RunningGateway, startGateway } from "./gateway.js";
import { eventually, shardMapAllOwnedBy, unary } from "./test-support.js";

const silent = pino({ level: "silent" });
const dir = mkdtempSync(join(tmpdir(), "berth-gateway-"));
const journalUrl = `sqlite://${join(dir, "journal.db")}`;
/** What the workers see. */
const workerMaps = new StaticShardMapSource();
/** What the gateway sees: lags behind the workers in the hand-off test. */
const gatewayMaps = new StaticShardMapSource();
const workers: RunningWorker[] = [];
const journals: { close(): Promise<void> }[] = [];
let gateway: RunningGateway;
let client: v1.CapacityServiceClient;
const pool = "default/van-north";

function mapOwnedBy(index: number, revision: number): internal.ShardMap {
  return shardMapAllOwnedBy({
    revision,
    owner: `worker-${index}`,
    epoch: revision,
    members: workers.map((w) => ({ id: w.id, address: w.address })),
  });
}

before(async () => {
  gateway = await startGateway({
    grpc: "127.0.0.1:0",
    gossip: "127.0.0.1:0",
    http: "127.0.0.1:0",
    shardMapSource: gatewayMaps,
    shardMapWaitMs: 0,
    logger: silent,
  });
  for (const id of ["worker-0", "worker-1"]) {
    const journal = await openJournal(journalUrl);
    journals.push(journal);
    workers.push(
      await startWorker({
        id,
        grpc: "127.0.0.1:0",
        journal,
        shardMapSource: workerMaps,
        gossipPeers: [gateway.gossipAddress],
        gossip: { pushDelayMs: 5, antiEntropyIntervalMs: 200 },
        logger: silent,
      }),
    );
  }
  const first = mapOwnedBy(0, 1);
  workerMaps.set(first);
  gatewayMaps.set(first);
  await Promise.all(workers.map((w) => w.whenReady()));
  client = new v1.CapacityServiceClient(gateway.grpcAddress, grpc.credentials.createInsecure());
  // Pools are configured the way the local supervisor does it: routed by the gateway's Router.
  await gateway.router.call(
    "configure",
    pool,
    internal.PoolSpec.fromPartial({
      pool,
      capacity: 10,
      labels: { zone: "north", kind: "van" },
      window: {
        start: { seconds: 1_800_000_000, nanos: 0 },
        end: { seconds: 1_800_003_600, nanos: 0 },
      },
      generation: 1,
    }),
    Date.now() + 10_000,
  );
});

after(async () => {
  client?.close();
  await gateway?.close();
  for (const w of workers) await w.close();
  for (const j of journals) await j.close();
  workerMaps.close();
  gatewayMaps.close();
  rmSync(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<grpc.ServiceError> {
  return p.then(
    () => assert.fail("expected the call to fail"),
    (e: unknown) => e as grpc.ServiceError,
  );
}

const reserve = (units: number, requestId: string): Promise<v1.ReserveResponse> =>
  unary(client, client.reserve, v1.ReserveRequest.fromPartial({ pool, units, requestId }));

describe("the gateway in front of real workers", () => {
  test("a reserve is taken by the owner, and a retry with the same request_id is a replay", async () => {
    const first = await reserve(3, "order-1");
    assert.equal(first.pool, pool);
    assert.equal(first.units, 3);
    assert.equal(first.replayed, false);
    const again = await reserve(3, "order-1");
    assert.equal(again.replayed, true);
    assert.equal(again.reservationId, first.reservationId);
  });

  test("get-pool reads the owner's state, naming the owner and epoch", async () => {
    const { pool: state } = await unary(
      client,
      client.getPool,
      v1.GetPoolRequest.fromPartial({ pool }),
    );
    assert.equal(state?.reserved, 3);
    assert.equal(state?.available, 7);
    assert.equal(state?.owner, "worker-0");
    assert.equal(state?.epoch, 1);
  });

  test("insufficient capacity passes through as FAILED_PRECONDITION with its reason", async () => {
    const err = await rejection(reserve(100, "too-big"));
    assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(parseRichStatus(err).reason, "INSUFFICIENT_CAPACITY");
  });

  test("an unknown pool is NOT_FOUND", async () => {
    const err = await rejection(
      unary(client, client.getPool, v1.GetPoolRequest.fromPartial({ pool: "default/nowhere" })),
    );
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.equal(parseRichStatus(err).reason, "POOL_NOT_FOUND");
  });

  test("release routes by its id and is idempotent", async () => {
    const { reservationId } = await reserve(2, "order-2");
    const released = await unary(
      client,
      client.release,
      v1.ReleaseRequest.fromPartial({ reservationId }),
    );
    assert.equal(released.pool, pool);
    assert.equal(released.units, 2);
    assert.equal(released.alreadyReleased, false);
    const again = await unary(
      client,
      client.release,
      v1.ReleaseRequest.fromPartial({ reservationId }),
    );
    assert.equal(again.alreadyReleased, true);
  });

  test("availability lists the pool from the gateway's gossip replica", async () => {
    await eventually(
      () => gateway.replica.get(pool)?.counters.reserved === 3,
      "gossip to reach the gateway",
    );
    const answer = await unary(
      client,
      client.getAvailability,
      v1.GetAvailabilityRequest.fromPartial({
        labelSelector: "zone=north,kind in (van,bike)",
        minUnits: 5,
      }),
    );
    assert.deepEqual(
      answer.pools.map((p) => [p.pool, p.capacity, p.reserved, p.available]),
      [[pool, 10, 3, 7]],
    );
    assert.ok(answer.maxStaleness !== undefined);
  });

  test("a hand-off the gateway learns late is crossed by retrying through NOT_OWNER", async () => {
    // The workers move every shard to worker-1; the gateway still routes to worker-0,
    // which answers NOT_OWNER naming the newer epoch, until the gateway's map catches up.
    const moved = mapOwnedBy(1, 2);
    workerMaps.set(moved);
    setTimeout(() => gatewayMaps.set(moved), 100);
    const response = await reserve(1, "order-3");
    assert.equal(response.replayed, false);
    const { pool: state } = await unary(
      client,
      client.getPool,
      v1.GetPoolRequest.fromPartial({ pool }),
    );
    assert.equal(state?.owner, "worker-1");
    assert.equal(state?.reserved, 4, "the new owner recovered every earlier reservation");
    const retries = (await fetchMetrics()).match(
      /berth_gateway_forward_retries_total\{reason="not_owner"[^}]*\} (\d+)/,
    );
    assert.ok(Number(retries?.[1] ?? 0) >= 1, "the gateway retried after NOT_OWNER");
  });
});

async function fetchMetrics(): Promise<string> {
  return (await fetch(`http://${gateway.httpAddress}/metrics`)).text();
}
