import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { GossipServiceClient, parseRichStatus, WorkerServiceClient } from "@berth/common";
import {
  decodeReservationId,
  encodeLegacyReservationId,
  encodeReservationId,
  internal,
  StaticShardMapSource,
  shardOf,
  type v1,
} from "@berth/proto";
import {
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { pino } from "pino";
import { type RunningWorker, startWorker } from "./adapters/worker-server.js";
import { SqliteJournal } from "./journal/sqlite-journal.js";

const SHARDS = 8;
const logger = pino({ level: "silent" });

type Client = InstanceType<typeof WorkerServiceClient>;

function unary<T>(invoke: (cb: (e: ServiceError | null, r: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => invoke((e, r) => (e ? reject(e) : resolve(r))));
}
const opts = () => ({ deadline: Date.now() + 5000 });

function api(client: Client) {
  return {
    reserve: (pool: string, units: number, requestId: string, callToken = "") =>
      unary<v1.ReserveResponse>((cb) =>
        client.reserve(
          { request: { pool, units, requestId }, epoch: 0, callToken },
          new Metadata(),
          opts(),
          cb,
        ),
      ),
    release: (reservationId: string) =>
      unary<v1.ReleaseResponse>((cb) =>
        client.release({ request: { reservationId }, epoch: 0 }, new Metadata(), opts(), cb),
      ),
    getPool: (pool: string) =>
      unary<v1.GetPoolResponse>((cb) =>
        client.getPool({ request: { pool }, epoch: 0 }, new Metadata(), opts(), cb),
      ),
    configure: (
      pool: string,
      capacity: number,
      labels: Record<string, string> = {},
      window?: v1.TimeWindow,
    ) =>
      unary<internal.ConfigureResponse>((cb) =>
        client.configure(
          {
            spec: { pool, capacity, labels, window, closed: false, generation: 1, deleted: false },
            epoch: 0,
          },
          new Metadata(),
          opts(),
          cb,
        ),
      ),
    /** Configure with `deleted`: the CapacityPool was deleted (its other fields are ignored). */
    retire: (pool: string) =>
      unary<internal.ConfigureResponse>((cb) =>
        client.configure(
          { spec: internal.PoolSpec.fromPartial({ pool, capacity: 99, deleted: true }), epoch: 0 },
          new Metadata(),
          opts(),
          cb,
        ),
      ),
    echo: (payload: Buffer) =>
      unary<internal.EchoResponse>((cb) => client.echo({ payload }, new Metadata(), opts(), cb)),
  };
}

/** Rejects unless `p` fails with `code` and ErrorInfo `reason`; returns the parsed status. */
async function failsWith(p: Promise<unknown>, code: status, reason?: string) {
  try {
    await p;
  } catch (e: unknown) {
    const s = parseRichStatus(e);
    assert.equal(s.code, code, `expected ${status[code]}, got ${status[s.code]}: ${s.message}`);
    if (reason !== undefined) assert.equal(s.reason, reason, s.message);
    return s;
  }
  assert.fail(`expected ${status[code]}, but the call succeeded`);
}

/** A pool id whose shard is `shard`. */
function poolIn(shard: number, prefix: string): string {
  for (let i = 0; ; i++) {
    const id = `default/${prefix}-${i}`;
    if (shardOf(id, SHARDS) === shard) return id;
  }
}

interface Owner {
  readonly id: string;
  readonly address: string;
  readonly epoch: number;
}

function shardMap(
  revision: number,
  members: readonly { id: string; address: string }[],
  owners: (shard: number) => Owner,
): internal.ShardMap {
  return {
    revision,
    shardCount: SHARDS,
    members: members.map((m) => ({ id: m.id, address: m.address })),
    quorum: 1,
    shards: Array.from({ length: SHARDS }, (_, shard) => {
      const o = owners(shard);
      return {
        shard,
        owner: o.id,
        epoch: o.epoch,
        state: internal.ShardState.SHARD_STATE_ACTIVE,
      };
    }),
  };
}

describe("worker over real gRPC", () => {
  let dir: string;
  let journal: SqliteJournal;
  let journalB: SqliteJournal;
  const sourceA = new StaticShardMapSource();
  const sourceB = new StaticShardMapSource();
  let a: RunningWorker;
  let b: RunningWorker;
  let clientA: Client;
  let clientB: Client;
  const ghost = { id: "worker-ghost", address: "127.0.0.1:1" };
  const FOREIGN = 0;
  const MOVED = 1;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "berth-worker-"));
    journal = SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
    a = await startWorker({
      id: "worker-a",
      grpc: "127.0.0.1:0",
      http: "127.0.0.1:0",
      journal,
      shardMapSource: sourceA,
      logger,
      snapshotEvery: 5,
      gossip: { antiEntropyIntervalMs: 100 },
    });
    // B shares the journal file through its own connection, as another process would.
    journalB = SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
    b = await startWorker({
      id: "worker-b",
      grpc: "127.0.0.1:0",
      journal: journalB,
      shardMapSource: sourceB,
      logger,
      gossip: { antiEntropyIntervalMs: 100 },
    });
    assert.equal(a.readiness().ready, false, "not ready before the shard map is known");
    const members = [{ id: a.id, address: a.address }, { id: b.id, address: b.address }, ghost];
    // Shard 0 belongs to a worker that is not running; everything else to A.
    const map1 = shardMap(1, members, (s) =>
      s === FOREIGN ? { ...ghost, epoch: 1 } : { id: a.id, address: a.address, epoch: 1 },
    );
    sourceA.set(map1);
    sourceB.set(map1);
    await a.whenReady();
    await b.whenReady();
    clientA = new WorkerServiceClient(a.address, credentials.createInsecure());
    clientB = new WorkerServiceClient(b.address, credentials.createInsecure());
  });

  after(async () => {
    clientA?.close();
    clientB?.close();
    await a?.close();
    await b?.close();
    await journal?.close();
    await journalB?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("configure, reserve, release and get a pool on its owner", async () => {
    const w = api(clientA);
    const pool = poolIn(3, "basic");
    const configured = await w.configure(pool, 10, { zone: "north" });
    assert.equal(configured.changed, true);
    assert.equal(configured.pool?.capacity, 10);
    assert.equal(configured.pool?.owner, "worker-a");
    assert.equal((await w.configure(pool, 10, { zone: "north" })).changed, false);

    const r = await w.reserve(pool, 4, "req-1");
    const id = decodeReservationId(r.reservationId);
    assert.ok(id.format === "r2" && id.pool === pool && id.seq === 2, r.reservationId);
    assert.equal(r.units, 4);
    assert.equal(r.replayed, false);
    assert.equal(r.version, 2);
    const again = await w.reserve(pool, 4, "req-1");
    assert.equal(again.reservationId, r.reservationId);
    assert.equal(again.replayed, true);

    const got = await w.getPool(pool);
    assert.deepEqual(
      { ...got.pool, labels: { ...got.pool?.labels } },
      {
        pool,
        capacity: 10,
        reserved: 4,
        available: 6,
        labels: { zone: "north" },
        window: undefined,
        closed: false,
        version: 2,
        activeReservations: 1,
        overCommitted: false,
        shard: 3,
        owner: "worker-a",
        epoch: 1,
      },
    );

    const released = await w.release(r.reservationId);
    assert.deepEqual(
      { ...released },
      { reservationId: r.reservationId, pool, units: 4, alreadyReleased: false, version: 3 },
    );
    assert.equal((await w.release(r.reservationId)).alreadyReleased, true);
    assert.equal((await w.getPool(pool)).pool?.reserved, 0);
  });

  test("domain rejections map to their gRPC status and reason", async () => {
    const w = api(clientA);
    const pool = poolIn(4, "rejections");
    await w.configure(pool, 2);
    const full = await failsWith(
      w.reserve(pool, 3, "too-many"),
      status.FAILED_PRECONDITION,
      "INSUFFICIENT_CAPACITY",
    );
    assert.equal(full.metadata.available, "2");
    const missing = poolIn(4, "missing");
    const noPool = await failsWith(w.reserve(missing, 1, "x"), status.NOT_FOUND, "POOL_NOT_FOUND");
    assert.equal(noPool.metadata.pool, missing, "NOT_FOUND names the pool asked about");
    await failsWith(w.getPool(missing), status.NOT_FOUND, "POOL_NOT_FOUND");
    const noReservation = await failsWith(
      w.release(encodeReservationId(pool, 999, "AAECAwQFBgcICQoLDA0ODw")),
      status.NOT_FOUND,
      "RESERVATION_NOT_FOUND",
    );
    assert.equal(noReservation.metadata.pool, pool);
    await w.reserve(pool, 1, "once");
    const reused = await failsWith(
      w.reserve(pool, 2, "once"),
      status.INVALID_ARGUMENT,
      "REQUEST_ID_REUSED",
    );
    assert.equal(reused.metadata.field, "request_id", "the client's own field name");
  });

  test("one internal reserve sent twice with one call token is answered replayed=false twice and reserves once; another token is a replay", async () => {
    const w = api(clientA);
    const pool = poolIn(5, "tokens");
    await w.configure(pool, 10);
    // The gateway's two attempts of one client call: the same request, the same token.
    const first = await w.reserve(pool, 3, "req-t", "call-1");
    const second = await w.reserve(pool, 3, "req-t", "call-1");
    assert.equal(first.replayed, false);
    assert.equal(second.replayed, false);
    assert.equal(second.reservationId, first.reservationId);
    assert.equal(second.version, first.version);
    // The client's own retry (a new call, so a new token) has been answered before.
    const retry = await w.reserve(pool, 3, "req-t", "call-2");
    assert.equal(retry.replayed, true);
    assert.equal(retry.reservationId, first.reservationId);
    // A caller that sends no token gets today's answer: a replay.
    assert.equal((await w.reserve(pool, 3, "req-t")).replayed, true);
    const got = (await w.getPool(pool)).pool;
    assert.equal(got?.reserved, 3);
    assert.equal(got?.activeReservations, 1);
    assert.equal(got?.version, 2, "one reserved event, nothing else written");
    const bad = await failsWith(
      w.reserve(pool, 3, "req-u", "a token with spaces"),
      status.INVALID_ARGUMENT,
      "INVALID_FIELD",
    );
    assert.equal(bad.metadata.field, "call_token");
  });

  test("the call token outlives a hand-off: the new owner knows it from the journal", async () => {
    // B shares A's journal; the token is in the reserved event, not in A's memory.
    const pool = poolIn(5, "token-handoff");
    const w = api(clientA);
    await w.configure(pool, 10);
    const first = await w.reserve(pool, 1, "req-h", "call-h");
    const fresh = await SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
    try {
      const loaded = await fresh.load(pool);
      const event = loaded.events.at(-1)?.event as { callToken?: string; secret?: string };
      assert.equal(event.callToken, "call-h");
      assert.equal(typeof event.secret, "string");
      const id = decodeReservationId(first.reservationId);
      assert.ok(id.format === "r2");
      assert.equal(event.secret, id.secret);
    } finally {
      await fresh.close();
    }
  });

  test("a pool whose window has ended takes no reserve (WINDOW_ENDED) but still takes releases and replays", async () => {
    const w = api(clientA);
    const pool = poolIn(6, "window");
    const nowS = Math.floor(Date.now() / 1000);
    await w.configure(
      pool,
      10,
      {},
      { start: { seconds: nowS + 3600, nanos: 0 }, end: { seconds: nowS + 7200, nanos: 0 } },
    );
    // Before the window's start: allowed.
    const early = await w.reserve(pool, 2, "early");
    await w.configure(
      pool,
      10,
      {},
      { start: { seconds: nowS - 7200, nanos: 0 }, end: { seconds: nowS - 3600, nanos: 0 } },
    );
    const ended = await failsWith(
      w.reserve(pool, 1, "late"),
      status.FAILED_PRECONDITION,
      "WINDOW_ENDED",
    );
    assert.equal(ended.metadata.windowEnd, new Date((nowS - 3600) * 1000).toISOString());
    assert.match(ended.message, /its window ended at /);
    assert.equal((await w.reserve(pool, 2, "early")).replayed, true);
    assert.equal((await w.release(early.reservationId)).alreadyReleased, false);
    assert.equal((await w.getPool(pool)).pool?.reserved, 0);
  });

  test("a reservation from before secrets existed is released by its r1 id; a bad r1 checksum is NOT_FOUND", async () => {
    const w = api(clientA);
    const pool = poolIn(7, "legacy");
    // Written as an earlier build wrote them: a reserved event without secret or token.
    await journal.append({ pool, shard: 7, epoch: 1, expectedVersion: 0 }, [
      {
        type: "configured",
        spec: { capacity: 5, labels: {}, closed: false, generation: 1, deleted: false },
        at: 1,
      },
      { type: "reserved", requestId: "old-1", units: 2, at: 2 },
    ]);
    const legacyId = encodeLegacyReservationId(pool, 2);
    // A replay answers the id the reservation was given: the r1 one.
    assert.equal((await w.reserve(pool, 2, "old-1")).reservationId, legacyId);
    const unknown = await failsWith(
      w.release(encodeReservationId(pool, 99, "AAECAwQFBgcICQoLDA0ODw")),
      status.NOT_FOUND,
      "RESERVATION_NOT_FOUND",
    );
    const badChecksum = await failsWith(
      w.release(`${legacyId.slice(0, -8)}00000000`),
      status.NOT_FOUND,
      "RESERVATION_NOT_FOUND",
    );
    assert.deepEqual(badChecksum, unknown);
    const withSecret = await failsWith(
      w.release(encodeReservationId(pool, 2, "AAECAwQFBgcICQoLDA0ODw")),
      status.NOT_FOUND,
      "RESERVATION_NOT_FOUND",
    );
    assert.deepEqual(withSecret, unknown);
    assert.equal((await w.getPool(pool)).pool?.reserved, 2);
    assert.equal((await w.release(legacyId)).alreadyReleased, false);
    assert.equal((await w.getPool(pool)).pool?.reserved, 0);
  });

  test("malformed requests are INVALID_ARGUMENT naming the field, and the worker keeps serving", async () => {
    const w = api(clientA);
    const bad = await failsWith(
      w.reserve("no-slash", 1, "x"),
      status.INVALID_ARGUMENT,
      "INVALID_FIELD",
    );
    assert.equal(bad.metadata.field, "request.pool");
    const units = await failsWith(
      w.reserve(poolIn(3, "basic"), 0, "x"),
      status.INVALID_ARGUMENT,
      "INVALID_FIELD",
    );
    assert.equal(units.metadata.field, "request.units");
    const id = await failsWith(
      w.release("not-a-reservation-id"),
      status.INVALID_ARGUMENT,
      "INVALID_FIELD",
    );
    assert.equal(id.metadata.field, "request.reservation_id");
    assert.match(id.message, /malformed reservation id/);
    const empty = await failsWith(
      unary((cb) =>
        clientA.reserve(
          { request: undefined, epoch: 0, callToken: "" },
          new Metadata(),
          opts(),
          cb,
        ),
      ),
      status.INVALID_ARGUMENT,
      "INVALID_FIELD",
    );
    assert.equal(empty.metadata.field, "request");
    const labels = await failsWith(
      w.configure(poolIn(3, "labels"), 1, { "bad key!": "x" }),
      status.INVALID_ARGUMENT,
      "INVALID_FIELD",
    );
    assert.match(labels.metadata.field ?? "", /^spec\.labels/);
    assert.deepEqual((await w.echo(Buffer.from("still here"))).payload, Buffer.from("still here"));
  });

  test("a pool of a shard owned elsewhere answers NOT_OWNER with the owner's id and address", async () => {
    const s = await failsWith(
      api(clientA).reserve(poolIn(FOREIGN, "foreign"), 1, "x"),
      status.FAILED_PRECONDITION,
      "NOT_OWNER",
    );
    assert.deepEqual(s.metadata, {
      shard: String(FOREIGN),
      epoch: "1",
      owner: ghost.id,
      ownerAddress: ghost.address,
    });
  });

  test("a shard moved to another worker: the stale owner is fenced, the new owner serves, nothing acknowledged is lost", async () => {
    const pool = poolIn(MOVED, "moving");
    const wa = api(clientA);
    const wb = api(clientB);
    await wa.configure(pool, 1000);
    const early = await wa.reserve(pool, 2, "early");

    // B learns it owns the shard at epoch 2; A has not heard yet (a paused old owner).
    const members = [{ id: a.id, address: a.address }, { id: b.id, address: b.address }, ghost];
    const map2 = shardMap(2, members, (s) =>
      s === FOREIGN
        ? { ...ghost, epoch: 1 }
        : s === MOVED
          ? { id: b.id, address: b.address, epoch: 2 }
          : { id: a.id, address: a.address, epoch: 1 },
    );
    // Three clients reserve at A one after another; the shard moves once A has
    // acknowledged 10, with requests in flight. Each is acknowledged or refused.
    type Ack = { requestId: string; reservationId: string };
    const acknowledged: Ack[] = [];
    let refused = 0;
    let startMove!: () => void;
    const moveNow = new Promise<void>((resolve) => {
      startMove = resolve;
    });
    const loop = async (client: number) => {
      for (let i = 0; i < 20; i++) {
        const requestId = `race-${client}-${i}`;
        try {
          const r = await wa.reserve(pool, 1, requestId);
          acknowledged.push({ requestId, reservationId: r.reservationId });
          if (acknowledged.length === 10) startMove();
        } catch (e: unknown) {
          const s = parseRichStatus(e);
          assert.ok(
            s.reason === "NOT_OWNER" || s.reason === "JOURNAL_UNAVAILABLE",
            `unexpected ${status[s.code]} ${s.reason}: ${s.message}`,
          );
          refused++;
        }
      }
    };
    const clients = Promise.all([loop(0), loop(1), loop(2)]);
    await moveNow;
    sourceB.set(map2);
    await clients;
    assert.ok(acknowledged.length >= 10, "reserves before the move were acknowledged");
    assert.ok(refused >= 1, "reserves after the move were refused");
    await b.whenReady();

    // The stale owner can no longer append.
    const stale = await failsWith(
      wa.reserve(pool, 1, "stale"),
      status.FAILED_PRECONDITION,
      "NOT_OWNER",
    );
    assert.match(stale.message, /newer owner/);

    // The new owner has every acknowledged reservation: retries replay them.
    for (const ack of [
      { requestId: "early", reservationId: early.reservationId },
      ...acknowledged,
    ]) {
      const replay = await wb.reserve(pool, ack.requestId === "early" ? 2 : 1, ack.requestId);
      assert.equal(replay.reservationId, ack.reservationId);
      assert.equal(replay.replayed, true);
    }
    const atB = await wb.getPool(pool);
    assert.equal(atB.pool?.owner, "worker-b");
    assert.equal(atB.pool?.epoch, 2);
    assert.equal(atB.pool?.reserved, 2 + acknowledged.length);
    const fresh = await wb.reserve(pool, 1, "after-move");
    assert.equal(fresh.replayed, false);
    await wb.release(early.reservationId);

    // Once A hears of the move it sends callers to B.
    sourceA.set(map2);
    const moved = await failsWith(wa.getPool(pool), status.FAILED_PRECONDITION, "NOT_OWNER");
    assert.equal(moved.metadata.owner, "worker-b");
    assert.equal(moved.metadata.ownerAddress, b.address);
    assert.equal(moved.metadata.epoch, "2");
  });

  test("a deleted pool is retired: NOT_FOUND as if never configured, gossiped as a tombstone; re-created it starts empty", async () => {
    const w = api(clientA);
    const pool = poolIn(6, "retired");
    await w.configure(pool, 5, { zone: "south" });
    const held = await w.reserve(pool, 2, "before");
    const gone = await w.retire(pool);
    assert.deepEqual({ ...gone }, { pool: undefined, changed: true });
    assert.equal((await w.retire(pool)).changed, false, "retiring twice writes nothing");
    await failsWith(w.reserve(pool, 1, "after"), status.NOT_FOUND, "POOL_NOT_FOUND");
    await failsWith(w.reserve(pool, 2, "before"), status.NOT_FOUND, "POOL_NOT_FOUND");
    await failsWith(w.getPool(pool), status.NOT_FOUND, "POOL_NOT_FOUND");
    await failsWith(w.release(held.reservationId), status.NOT_FOUND, "RESERVATION_NOT_FOUND");
    // Gossip carries a tombstone, so no replica lists the pool any more.
    for (let i = 0; i < 200 && b.replica.get(pool)?.counters.deleted !== true; i++) {
      await new Promise((res) => setTimeout(res, 25));
    }
    assert.equal(b.replica.get(pool)?.counters.deleted, true);
    assert.equal(
      b.replica
        .query({ minUnits: 0, includeClosed: true, pageSize: 0, pageToken: "" })
        .pools.some((p) => p.counters.pool === pool),
      false,
    );
    // Retiring a pool that never existed writes nothing.
    const never = poolIn(6, "never");
    assert.deepEqual({ ...(await w.retire(never)) }, { pool: undefined, changed: false });
    await failsWith(w.getPool(never), status.NOT_FOUND, "POOL_NOT_FOUND");
    // Re-created with the same name: a new pool; the old reservation stays unreleasable.
    const again = await w.configure(pool, 5, { zone: "south" });
    assert.equal(again.pool?.reserved, 0);
    assert.equal(again.pool?.available, 5);
    await failsWith(w.release(held.reservationId), status.NOT_FOUND, "RESERVATION_NOT_FOUND");
    const fresh = await w.reserve(pool, 2, "before");
    assert.equal(fresh.replayed, false, "an old request id is not replayed by the new pool");
    assert.notEqual(fresh.reservationId, held.reservationId);
  });

  test("gossip spreads committed counters to the other workers", async () => {
    const pool = poolIn(5, "gossiped");
    const w = api(clientA);
    await w.configure(pool, 7);
    const r = await w.reserve(pool, 3, "g");
    for (let i = 0; i < 200; i++) {
      const e = b.replica.get(pool);
      if (e !== undefined && e.counters.version >= r.version) break;
      await new Promise((res) => setTimeout(res, 25));
    }
    const entry = b.replica.get(pool);
    assert.equal(entry?.counters.reserved, 3);
    assert.equal(entry?.counters.capacity, 7);
    const gossipClient = new GossipServiceClient(a.address, credentials.createInsecure());
    const pulled = await unary<internal.PullResponse>((cb) =>
      gossipClient.pull({ from: "test", pageToken: "" }, new Metadata(), opts(), cb),
    );
    gossipClient.close();
    assert.ok(pulled.entries.some((e) => e.pool === pool && e.reserved === 3));
  });

  test("the standard gRPC health service reports the WorkerService as serving once ready", async () => {
    const Health = makeGenericClientConstructor(healthService, "grpc.health.v1.Health");
    const health = new Health(a.address, credentials.createInsecure()) as unknown as {
      check(
        req: { service: string },
        md: Metadata,
        o: { deadline: number },
        cb: (e: ServiceError | null, r: { status: string }) => void,
      ): void;
      close(): void;
    };
    for (const name of [
      "",
      "berth.internal.v1.WorkerService",
      "berth.internal.v1.WorkerControlService",
      "berth.internal.v1.GossipService",
    ]) {
      const r = await unary<{ status: string }>((cb) =>
        health.check({ service: name }, new Metadata(), opts(), cb),
      );
      assert.equal(r.status, "SERVING", name);
    }
    health.close();
  });

  test("the HTTP endpoints report readiness and the worker's metrics", async () => {
    const ready = await fetch(`http://${a.httpAddress}/readyz`);
    assert.equal(ready.status, 200);
    const text = await (await fetch(`http://${a.httpAddress}/metrics`)).text();
    for (const name of [
      'grpc_server_handled_total{grpc_service="berth.internal.v1.WorkerService",grpc_method="Reserve",grpc_type="unary",grpc_code="OK"',
      "grpc_server_handling_seconds_bucket",
      "berth_journal_append_seconds_bucket",
      "berth_group_commit_events_bucket",
      "berth_pools_loaded",
      "berth_shards_owned",
      "berth_recovery_seconds_bucket",
    ]) {
      assert.ok(text.includes(name), `metrics lack ${name}`);
    }
  });
});
