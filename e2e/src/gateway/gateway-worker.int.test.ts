// The gateway in front of two REAL workers (startWorker from @berth/worker) sharing a
// real SQLite journal in a temp dir, all in this process over real gRPC on loopback.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CapacityServiceClient, parseRichStatus } from "@berth/common";
import { type RunningGateway, startGateway } from "@berth/gateway";
import { eventually, shardMapAllOwnedBy, unary } from "@berth/gateway/testing";
import {
  decodeReservationId,
  encodeLegacyReservationId,
  encodeReservationId,
  internal,
  StaticShardMapSource,
  v1,
} from "@berth/proto";
import { openJournal, type RunningWorker, startWorker } from "@berth/worker";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";

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
let client: CapacityServiceClient;
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
  client = new CapacityServiceClient(gateway.grpcAddress, grpc.credentials.createInsecure());
  // Pools are configured the way the local supervisor does it: routed by the gateway's Router.
  await gateway.router.call(
    "configure",
    pool,
    internal.PoolSpec.fromPartial({
      pool,
      capacity: 10,
      labels: { zone: "north", kind: "van" },
      window: {
        start: { seconds: 1_900_000_000, nanos: 0 },
        end: { seconds: 1_900_003_600, nanos: 0 },
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

  test("releasing by guessing fails: every forged id is NOT_FOUND with no hint, and the holder's id still works", async () => {
    const seats = "default/attack-seats";
    await gateway.router.call(
      "configure",
      seats,
      internal.PoolSpec.fromPartial({ pool: seats, capacity: 10, generation: 1 }),
      Date.now() + 10_000,
    );
    // Client A reserves 4 seats.
    const a = await unary(
      client,
      client.reserve,
      v1.ReserveRequest.fromPartial({ pool: seats, units: 4, requestId: "a-1" }),
    );
    const aId = decodeReservationId(a.reservationId);
    assert.equal(aId.format, "r2");
    // The attacker reads the pool's version from GetAvailability: the seq of A's reservation.
    await eventually(
      () => gateway.replica.get(seats)?.counters.version === a.version,
      "gossip to reach the gateway",
    );
    const listed = await unary(
      client,
      client.getAvailability,
      v1.GetAvailabilityRequest.fromPartial({}),
    );
    const version = listed.pools.find((p) => p.pool === seats)?.version;
    assert.equal(version, aId.seq);
    const seq = version as number;
    const r1 = encodeLegacyReservationId(seats, seq);
    const guess = () => randomBytes(16).toString("base64url");
    const forged: [string, string][] = [
      ["an r1 id with a valid checksum", r1],
      ["an r1 id with a corrupted checksum", `${r1.slice(0, -8)}00000000`],
      ["an r1 id with another corrupted checksum", `${r1.slice(0, -8)}0d54e368`],
      ["an r2 id with a guessed secret", encodeReservationId(seats, seq, guess())],
      ["an r2 id with another guessed secret", encodeReservationId(seats, seq, guess())],
      ["an r2 id for the seq before", encodeReservationId(seats, seq - 1, guess())],
    ];
    const release = (reservationId: string) =>
      rejection(unary(client, client.release, v1.ReleaseRequest.fromPartial({ reservationId })));
    // What a reservation that does not exist gets: every forgery must get exactly this.
    const unknown = await release(encodeReservationId(seats, 999_999, guess()));
    const shape = (e: grpc.ServiceError) => {
      const s = parseRichStatus(e);
      return { code: s.code, message: s.message, reason: s.reason, metadata: s.metadata };
    };
    const expected = shape(unknown);
    assert.equal(expected.code, grpc.status.NOT_FOUND);
    assert.equal(expected.reason, "RESERVATION_NOT_FOUND");
    for (const [what, id] of forged) {
      const got = shape(await release(id));
      assert.deepEqual(got, expected, what);
      const text = JSON.stringify(got);
      assert.ok(
        !text.includes(aId.format === "r2" ? aId.secret : "?"),
        `${what}: leaks the secret`,
      );
      assert.ok(!text.includes(r1.slice(-8)), `${what}: leaks the r1 checksum`);
    }
    const { pool: after } = await unary(
      client,
      client.getPool,
      v1.GetPoolRequest.fromPartial({ pool: seats }),
    );
    assert.equal(after?.reserved, 4, "A's seats are still reserved");
    assert.equal(after?.activeReservations, 1);
    assert.equal(after?.version, a.version, "no forgery wrote anything");
    // A's own release works.
    const released = await unary(
      client,
      client.release,
      v1.ReleaseRequest.fromPartial({ reservationId: a.reservationId }),
    );
    assert.equal(released.units, 4);
    assert.equal(released.alreadyReleased, false);
  });

  test("reservations with the same pool seq and request id get different secrets, so ids never repeat across data resets", async () => {
    // Same pool, same seq, same request id: only the secret tells them apart.
    const p = "default/reset-twice";
    const ids: string[] = [];
    for (const round of [1, 2]) {
      const name = `${p}-${round}`;
      await gateway.router.call(
        "configure",
        name,
        internal.PoolSpec.fromPartial({ pool: name, capacity: 1, generation: 1 }),
        Date.now() + 10_000,
      );
      const r = await unary(
        client,
        client.reserve,
        v1.ReserveRequest.fromPartial({ pool: name, units: 1, requestId: "same" }),
      );
      const d = decodeReservationId(r.reservationId);
      assert.ok(d.format === "r2" && d.seq === 2);
      ids.push(d.format === "r2" ? d.secret : "");
    }
    assert.notEqual(ids[0], ids[1]);
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
