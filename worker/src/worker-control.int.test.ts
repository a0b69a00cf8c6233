// WorkerControlService.WatchShards and the graceful leave, over real gRPC on loopback,
// against workers on a real SQLite journal. No assertion is about time.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { parseRichStatus, SpecDigest, WorkerServiceClient } from "@berth/common";
import { internal, StaticShardMapSource, shardOf, type v1 } from "@berth/proto";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { pino } from "pino";
import { HandOffPublisher, RecordedWatch, reported } from "./adapters/shard-watch-testkit.js";
import { type RunningWorker, startWorker } from "./adapters/worker-server.js";
import { GatedJournal, HeldLoadsJournal } from "./entity/testing-journals.js";
import type { Journal } from "./journal/journal.js";
import { SqliteJournal } from "./journal/sqlite-journal.js";

const SHARDS = 8;
const ME = "worker-a";
const OTHER = "worker-b";
const logger = pino({ level: process.env.BERTH_TEST_LOG_LEVEL ?? "silent" });
const { SHARD_REPORT_STATE_RECOVERING, SHARD_REPORT_STATE_SERVING, SHARD_REPORT_STATE_DRAINED } =
  internal.ShardReportState;
const { SHARD_STATE_ACTIVE, SHARD_STATE_DRAINING } = internal.ShardState;

type Assign = { owner: string; epoch: number; state?: internal.ShardState };

function shardMap(
  revision: number,
  assign: (shard: number) => Assign,
  shardCount = SHARDS,
): internal.ShardMap {
  return {
    revision,
    shardCount,
    quorum: 1,
    members: [
      { id: ME, address: "127.0.0.1:1" },
      { id: OTHER, address: "127.0.0.1:2" },
    ],
    shards: Array.from({ length: shardCount }, (_, shard) => {
      const a = assign(shard);
      return { shard, owner: a.owner, epoch: a.epoch, state: a.state ?? SHARD_STATE_ACTIVE };
    }),
  };
}

/** A pool id whose shard is `shard`. */
function poolIn(shard: number, prefix: string): string {
  for (let i = 0; ; i++) {
    const id = `default/${prefix}-${i}`;
    if (shardOf(id, SHARDS) === shard) return id;
  }
}

/** A temporary SQLite journal file; `open` gives another connection to it. */
async function withJournalFile(body: (open: () => SqliteJournal) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "berth-control-"));
  const opened: SqliteJournal[] = [];
  try {
    await body(() => {
      const j = SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
      opened.push(j);
      return j;
    });
  } finally {
    for (const j of opened) await j.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function worker(
  id: string,
  journal: Journal,
  source: StaticShardMapSource,
  clusterId = "",
): Promise<RunningWorker> {
  return startWorker({
    id,
    clusterId,
    grpc: "127.0.0.1:0",
    journal,
    shardMapSource: source,
    logger,
  });
}

/** The WorkerService of `w`, promisified. */
function workerApi(w: RunningWorker) {
  const client = new WorkerServiceClient(w.address, credentials.createInsecure());
  const unary = <T>(call: (cb: (e: ServiceError | null, r: T) => void) => void) =>
    new Promise<T>((resolve, reject) => call((e, r) => (e ? reject(e) : resolve(r))));
  const opts = () => ({ deadline: Date.now() + 30_000 });
  return {
    configure: (pool: string, capacity: number) =>
      unary<internal.ConfigureResponse>((cb) =>
        client.configure(
          {
            spec: {
              pool,
              capacity,
              labels: {},
              window: undefined,
              closed: false,
              generation: 1,
              deleted: false,
            },
            epoch: 0,
          },
          new Metadata(),
          opts(),
          cb,
        ),
      ),
    reserve: (pool: string, units: number, requestId: string) =>
      unary<v1.ReserveResponse>((cb) =>
        client.reserve(
          { request: { pool, units, requestId }, epoch: 0, callToken: "" },
          new Metadata(),
          opts(),
          cb,
        ),
      ),
    getPool: (pool: string) =>
      unary<v1.GetPoolResponse>((cb) =>
        client.getPool({ request: { pool }, epoch: 0 }, new Metadata(), opts(), cb),
      ),
    close: () => client.close(),
  };
}

/** Polls `condition` until it holds; fails after a generous deadline. */
async function eventually(what: string, condition: () => boolean): Promise<void> {
  const end = Date.now() + 30_000;
  while (!condition()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const allServing = (epoch: number) => (m: internal.WatchShardsResponse) =>
  m.shards.length === SHARDS &&
  m.shards.every((s) => s.state === SHARD_REPORT_STATE_SERVING && s.epoch === epoch);

test("a shard acquired is RECOVERING while its pools load, then SERVING at its epoch, and absent once moved away", async () => {
  await withJournalFile(async (open) => {
    const sqlite = open();
    // A pool written by an earlier owner, so that recovery has something to load.
    const pool = poolIn(2, "recover");
    await sqlite.fence(pool, 2, 1);
    await sqlite.append({ pool, shard: 2, epoch: 1, expectedVersion: 0 }, [
      {
        type: "configured",
        spec: { capacity: 5, labels: {}, closed: false, generation: 1, deleted: false },
        at: 1,
      },
    ]);
    const journal = new HeldLoadsJournal(sqlite);
    const source = new StaticShardMapSource();
    const w = await worker(ME, journal, source);
    const watch = new RecordedWatch(w.address);
    try {
      await watch.until("the first snapshot", () => true);
      assert.deepEqual(watch.messages[0], {
        memberId: ME,
        mapRevision: 0,
        shards: [],
        leaving: false,
      });

      journal.hold();
      source.set(
        shardMap(1, (s) => (s === 2 ? { owner: ME, epoch: 2 } : { owner: OTHER, epoch: 1 })),
      );
      const recovering = await watch.until("shard 2 is recovering", (m) => m.mapRevision === 1);
      assert.deepEqual(watch.messages[recovering]?.shards, [
        { shard: 2, epoch: 2, state: SHARD_REPORT_STATE_RECOVERING, specDigest: "" },
      ]);
      journal.release();
      const serving = await watch.until(
        "shard 2 serves",
        (m) => reported(m, 2)?.state === SHARD_REPORT_STATE_SERVING,
      );
      assert.ok(serving > recovering);
      // Serving, it says which specs are in force: the one pool's, as a publisher computes it.
      const expected = new SpecDigest();
      expected.add(pool, { capacity: 5, labels: {}, closed: false, generation: 1 });
      const specDigest = expected.toString();
      assert.match(specDigest, /^1:[0-9a-f]{32}$/);
      assert.deepEqual(watch.messages[serving], {
        memberId: ME,
        mapRevision: 1,
        shards: [{ shard: 2, epoch: 2, state: SHARD_REPORT_STATE_SERVING, specDigest }],
        leaving: false,
      });

      // Moved straight to another owner (no drain): gone from the report.
      source.set(shardMap(2, () => ({ owner: OTHER, epoch: 3 })));
      const moved = await watch.until("the move is applied", (m) => m.mapRevision === 2);
      assert.deepEqual(watch.messages[moved]?.shards, []);
    } finally {
      watch.close();
      await w.close();
    }
  });
});

test("a shard marked DRAINING is DRAINED only after its in-flight reserve finished, and stays so until the map moves it", async () => {
  await withJournalFile(async (open) => {
    const journal = new GatedJournal(open());
    const source = new StaticShardMapSource(shardMap(1, () => ({ owner: ME, epoch: 1 })));
    const w = await worker(ME, journal, source);
    const api = workerApi(w);
    const watch = new RecordedWatch(w.address);
    try {
      await w.whenReady();
      const pool = poolIn(3, "drain");
      await api.configure(pool, 10);
      await watch.until("every shard serves", allServing(1));

      journal.hold();
      const inFlight = api.reserve(pool, 2, "in-flight");
      await eventually("the reserve's append waits at the gate", () => journal.waiting === 1);
      source.set(
        shardMap(2, (s) => ({
          owner: ME,
          epoch: 1,
          state: s === 3 ? SHARD_STATE_DRAINING : SHARD_STATE_ACTIVE,
        })),
      );
      const applied = await watch.until("the DRAINING map is applied", (m) => m.mapRevision === 2);
      assert.equal(reported(watch.messages[applied], 3), undefined, "neither serving nor drained");
      // No new command is taken while it drains.
      const refused = await api.reserve(pool, 1, "too-late").then(
        () => assert.fail("a reserve was taken by a draining shard"),
        (e: unknown) => parseRichStatus(e),
      );
      assert.equal(refused.reason, "NOT_OWNER");
      assert.ok(
        watch.messages.every((m) => reported(m, 3)?.state !== SHARD_REPORT_STATE_DRAINED),
        "not drained while its append is in flight",
      );

      journal.release();
      const done = await inFlight;
      assert.equal(done.units, 2, "the in-flight reserve was acknowledged");
      const drained = await watch.until(
        "shard 3 is drained",
        (m) => reported(m, 3)?.state === SHARD_REPORT_STATE_DRAINED,
      );
      assert.deepEqual(reported(watch.messages[drained], 3), {
        state: SHARD_REPORT_STATE_DRAINED,
        epoch: 1,
      });

      // Another change of the map leaves the drained shard drained.
      source.set(
        shardMap(3, (s) => ({
          owner: s === 5 ? OTHER : ME,
          epoch: s === 5 ? 2 : 1,
          state: s === 3 ? SHARD_STATE_DRAINING : SHARD_STATE_ACTIVE,
        })),
      );
      const later = await watch.until("revision 3 is applied", (m) => m.mapRevision === 3);
      assert.deepEqual(reported(watch.messages[later], 3), {
        state: SHARD_REPORT_STATE_DRAINED,
        epoch: 1,
      });
      assert.equal(reported(watch.messages[later], 5), undefined);

      // Handed off (another owner, epoch + 1): absent.
      source.set(
        shardMap(4, (s) =>
          s === 3 || s === 5 ? { owner: OTHER, epoch: 2 } : { owner: ME, epoch: 1 },
        ),
      );
      const handedOff = await watch.until("revision 4 is applied", (m) => m.mapRevision === 4);
      assert.equal(reported(watch.messages[handedOff], 3), undefined);
      assert.equal(watch.messages[handedOff]?.shards.length, SHARDS - 2);
    } finally {
      journal.release();
      watch.close();
      api.close();
      await w.close();
    }
  });
});

test("a drain called off (ACTIVE again at the same epoch) is recovered and served again", async () => {
  await withJournalFile(async (open) => {
    const source = new StaticShardMapSource(shardMap(1, () => ({ owner: ME, epoch: 1 })));
    const w = await worker(ME, open(), source);
    const api = workerApi(w);
    const watch = new RecordedWatch(w.address);
    try {
      await w.whenReady();
      const pool = poolIn(6, "cancel");
      await api.configure(pool, 10);
      await api.reserve(pool, 4, "kept");
      const draining = (s: number) => ({
        owner: ME,
        epoch: 1,
        state: s === 6 ? SHARD_STATE_DRAINING : SHARD_STATE_ACTIVE,
      });
      source.set(shardMap(2, draining));
      await watch.until(
        "shard 6 is drained",
        (m) => reported(m, 6)?.state === SHARD_REPORT_STATE_DRAINED,
      );
      source.set(shardMap(3, () => ({ owner: ME, epoch: 1 })));
      const back = await watch.until(
        "shard 6 serves again",
        (m) => m.mapRevision === 3 && reported(m, 6)?.state === SHARD_REPORT_STATE_SERVING,
      );
      assert.deepEqual(reported(watch.messages[back], 6), {
        state: SHARD_REPORT_STATE_SERVING,
        epoch: 1,
      });
      assert.equal((await api.getPool(pool)).pool?.reserved, 4, "its state was loaded again");
    } finally {
      watch.close();
      api.close();
      await w.close();
    }
  });
});

test("changes within one event-loop turn make one message, and two watchers hear the same", async () => {
  await withJournalFile(async (open) => {
    const source = new StaticShardMapSource(shardMap(1, () => ({ owner: ME, epoch: 1 })));
    const w = await worker(ME, open(), source);
    const first = new RecordedWatch(w.address);
    const second = new RecordedWatch(w.address);
    try {
      await first.until("every shard serves", allServing(1));
      await second.until("every shard serves", allServing(1));
      for (let revision = 2; revision <= 50; revision++) {
        source.set(shardMap(revision, () => ({ owner: ME, epoch: 1 })));
      }
      for (const watch of [first, second]) {
        const last = await watch.until("revision 50 is applied", (m) => m.mapRevision === 50);
        assert.ok(allServing(1)(watch.messages[last] as internal.WatchShardsResponse));
        const between = watch.messages.filter((m) => m.mapRevision > 1 && m.mapRevision < 50);
        assert.deepEqual(between, [], "no message for a map superseded within the turn");
      }
      // A watcher that joins later hears the current state at once.
      const late = new RecordedWatch(w.address);
      try {
        await late.until("the first snapshot", () => true);
        assert.equal(late.messages[0]?.mapRevision, 50);
        assert.ok(allServing(1)(late.messages[0] as internal.WatchShardsResponse));
      } finally {
        late.close();
      }
    } finally {
      first.close();
      second.close();
      await w.close();
    }
  });
});

test("a watcher that does not read is sent the newest snapshot once it reads again, not every one it missed", async () => {
  const shardCount = 256;
  const changes = 400;
  await withJournalFile(async (open) => {
    const source = new StaticShardMapSource(
      shardMap(1, () => ({ owner: ME, epoch: 1 }), shardCount),
    );
    const w = await worker(ME, open(), source);
    const slow = new RecordedWatch(w.address);
    try {
      await slow.until("every shard serves", (m) => m.shards.length === shardCount);
      slow.pause();
      const received = slow.messages.length;
      for (let revision = 2; revision <= changes + 1; revision++) {
        source.set(shardMap(revision, () => ({ owner: ME, epoch: 1 }), shardCount));
        await nextTurn(); // one message per turn to a watcher that reads
      }
      slow.resume();
      await slow.until("the last map is applied", (m) => m.mapRevision === changes + 1);
      const sent = slow.messages.length - received;
      assert.ok(
        sent < changes / 2,
        `${sent} messages for ${changes} changes: the watcher was queued`,
      );
      assert.equal(slow.latest?.mapRevision, changes + 1, "the final state is the last message");
    } finally {
      slow.close();
      await w.close();
    }
  });
});

test("the streams end with OK on shutdown, their last message holding no shard", async () => {
  await withJournalFile(async (open) => {
    const source = new StaticShardMapSource(shardMap(1, () => ({ owner: ME, epoch: 1 })));
    const w = await worker(ME, open(), source);
    const watches = [new RecordedWatch(w.address), new RecordedWatch(w.address)];
    try {
      for (const watch of watches) await watch.until("every shard serves", allServing(1));
      await w.close();
      for (const watch of watches) {
        const end = await watch.ended;
        assert.equal(end.code, status.OK, end.details);
        assert.deepEqual(watch.latest?.shards, []);
      }
    } finally {
      for (const watch of watches) watch.close();
      await w.close();
    }
  });
});

test("a caller of another cluster, or of none, is refused with CLUSTER_MISMATCH", async () => {
  await withJournalFile(async (open) => {
    const source = new StaticShardMapSource(shardMap(1, () => ({ owner: ME, epoch: 1 })));
    const w = await worker(ME, open(), source, "control-test");
    try {
      for (const clusterId of ["", "another-cluster"]) {
        const stranger = new RecordedWatch(w.address, clusterId);
        try {
          const end = await stranger.ended;
          assert.equal(end.code, status.PERMISSION_DENIED, end.details);
          assert.equal(parseRichStatus(end).reason, "CLUSTER_MISMATCH");
          assert.deepEqual(stranger.messages, [], "nothing was told to a stranger");
        } finally {
          stranger.close();
        }
      }
      const member = new RecordedWatch(w.address, "control-test");
      try {
        await member.until("every shard serves", allServing(1));
      } finally {
        member.close();
      }
    } finally {
      await w.close();
    }
  });
});

test("a leaving worker says so at once, keeps serving, and its leave ends once a publisher has moved every shard away", async () => {
  await withJournalFile(async (open) => {
    const source = new StaticShardMapSource(shardMap(1, () => ({ owner: ME, epoch: 1 })));
    const a = await worker(ME, open(), source);
    const b = await worker(OTHER, open(), source);
    const apiA = workerApi(a);
    const apiB = workerApi(b);
    const watch = new RecordedWatch(a.address);
    try {
      await a.whenReady();
      const pool = poolIn(4, "leave");
      await apiA.configure(pool, 10);
      const first = await apiA.reserve(pool, 3, "before");
      await watch.until("every shard serves", allServing(1));

      const leaving = a.leave({ timeoutMs: 60_000 });
      const said = await watch.until("it says it is leaving", (m) => m.leaving);
      assert.ok(allServing(1)(watch.messages[said] as internal.WatchShardsResponse));
      const during = await apiA.reserve(pool, 1, "while-leaving");
      assert.equal(during.replayed, false, "a leaving worker still serves what it holds");

      // The publisher drains each shard, then moves it once A reports it drained.
      new HandOffPublisher(
        watch,
        OTHER,
        () => source.current() as internal.ShardMap,
        (m) => source.set(m),
      );
      assert.deepEqual(await leaving, { handedOff: true, remaining: 0 });
      const map = source.current() as internal.ShardMap;
      assert.ok(map.shards.every((s) => s.owner === OTHER && s.epoch === 2));
      assert.ok(
        watch.messages.some((m) => reported(m, 4)?.state === SHARD_REPORT_STATE_DRAINED),
        "shard 4 was reported drained before it moved",
      );
      const last = await watch.until("it reports no shard", (m) => m.shards.length === 0);
      assert.equal(watch.messages[last]?.leaving, true);

      await b.whenReady();
      const atB = (await apiB.getPool(pool)).pool;
      assert.deepEqual(
        { owner: atB?.owner, epoch: atB?.epoch, reserved: atB?.reserved },
        { owner: OTHER, epoch: 2, reserved: 4 },
      );
      const replay = await apiB.reserve(pool, 3, "before");
      assert.equal(replay.reservationId, first.reservationId);
    } finally {
      watch.close();
      apiA.close();
      apiB.close();
      await a.close();
      await b.close();
    }
  });
});

test("a leave nobody answers ends at its timeout, still holding its shards, or when the worker closes", async () => {
  await withJournalFile(async (open) => {
    const source = new StaticShardMapSource(shardMap(1, () => ({ owner: ME, epoch: 1 })));
    const w = await worker(ME, open(), source, "leave-test");
    const watch = new RecordedWatch(w.address, "leave-test");
    try {
      await w.whenReady();
      assert.deepEqual(await w.leave({ timeoutMs: 200 }), { handedOff: false, remaining: SHARDS });
      await watch.until("it says it is leaving", (m) => m.leaving && allServing(1)(m));
      assert.equal(w.readiness().ready, true, "it still serves after the timeout");

      const cut = w.leave({ timeoutMs: 120_000 });
      const closed = w.close();
      assert.deepEqual(await cut, { handedOff: false, remaining: SHARDS });
      await closed;
    } finally {
      watch.close();
      await w.close();
    }
  });
});
