import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pino } from "pino";
import type { PoolSpec } from "../domain/pool.js";
import type { Journal } from "../journal/journal.js";
import { SqliteJournal } from "../journal/sqlite-journal.js";
import type { EntityOutcome } from "./entity-outcome.js";
import { PoolEntity, type PoolEntityOptions } from "./pool-entity.js";
import { CountingJournal, FaultyJournal, GatedJournal } from "./testing-journals.js";

const POOL = "default/slots";
const SHARD = 7;
const logger = pino({ level: "silent" });
const spec = (capacity: number, closed = false): PoolSpec => ({
  capacity,
  labels: { zone: "north" },
  closed,
  generation: 1,
});

/** Runs `body` with a fresh SQLite file; closes every journal opened through `open`. */
async function withDb(body: (open: () => SqliteJournal) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "berth-entity-"));
  const opened: SqliteJournal[] = [];
  try {
    await body(() => {
      const j = SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
      opened.push(j);
      return j;
    });
  } finally {
    for (const j of opened) await j.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

function entity(journal: Journal, extra: Partial<PoolEntityOptions> = {}): PoolEntity {
  return new PoolEntity({
    pool: POOL,
    shard: SHARD,
    epoch: 1,
    journal,
    logger,
    fenceOnStart: true,
    backoff: { baseMs: 1, maxMs: 5 },
    ...extra,
  });
}

async function configured(
  journal: Journal,
  capacity: number,
  extra: Partial<PoolEntityOptions> = {},
) {
  const e = entity(journal, extra);
  await e.start();
  const o = await e.submit({ type: "configure", spec: spec(capacity), at: 1 });
  assert.equal(o.kind, "ok");
  return e;
}

const reserve = (requestId: string, units = 1) =>
  ({ type: "reserve", units, requestId, at: 2 }) as const;

function seqOf(o: EntityOutcome): number {
  assert.equal(o.kind, "ok", JSON.stringify(o));
  if (o.kind !== "ok" || o.reply.type !== "reserved") throw new Error("not a reservation");
  return o.reply.reservationSeq;
}

describe("PoolEntity", () => {
  test("200 concurrent reserves on capacity 100: exactly 100 succeed, in fewer appends than commands", async () => {
    await withDb(async (open) => {
      const journal = new CountingJournal(open());
      const e = await configured(journal, 100);
      const appendsBefore = journal.appends;
      const outcomes = await Promise.all(
        Array.from({ length: 200 }, (_, i) => e.submit(reserve(`r-${i}`))),
      );
      const ok = outcomes.filter((o) => o.kind === "ok");
      const rejected = outcomes.filter(
        (o) => o.kind === "rejected" && o.rejection.code === "INSUFFICIENT_CAPACITY",
      );
      assert.equal(ok.length, 100);
      assert.equal(rejected.length, 100);
      const appends = journal.appends - appendsBefore;
      assert.ok(appends < 100, `expected batching, got ${appends} appends for 100 events`);
      assert.equal(new Set(ok.map(seqOf)).size, 100, "every reservation has its own seq");
      const loaded = await journal.load(POOL);
      assert.equal(loaded.version, 101);
      assert.equal(e.view?.reserved, 100);
      assert.equal(e.view?.available, 0);
    });
  });

  test("a group commit never exceeds maxBatchEvents events per append", async () => {
    await withDb(async (open) => {
      const journal = new CountingJournal(open());
      const e = await configured(journal, 1000, { maxBatchEvents: 8 });
      const before = journal.appends;
      await Promise.all(Array.from({ length: 40 }, (_, i) => e.submit(reserve(`r-${i}`))));
      assert.ok(journal.appends - before >= 5, "40 events at most 8 per append need 5 appends");
      assert.equal((await journal.load(POOL)).version, 41);
    });
  });

  test("a retried reserve with the same request id replays the reservation and writes nothing", async () => {
    await withDb(async (open) => {
      const journal = new CountingJournal(open());
      const e = await configured(journal, 10);
      const first = await e.submit(reserve("same", 3));
      const events = journal.events;
      const again = await e.submit(reserve("same", 3));
      assert.equal(seqOf(again), seqOf(first));
      assert.ok(again.kind === "ok" && again.reply.type === "reserved" && again.reply.replayed);
      assert.equal(journal.events, events, "the replay wrote nothing");
      assert.equal(e.view?.reserved, 3);
      const reused = await e.submit(reserve("same", 4));
      assert.equal(reused.kind, "rejected");
      assert.ok(reused.kind === "rejected");
      assert.equal(reused.rejection.code, "REQUEST_ID_REUSED");
    });
  });

  test("a reopened journal recovers the pool, from a snapshot plus the events after it", async () => {
    await withDb(async (open) => {
      const first = open();
      const e = await configured(first, 10, { snapshotEvery: 3 });
      const seqs: number[] = [];
      for (let i = 0; i < 5; i++) seqs.push(seqOf(await e.submit(reserve(`r-${i}`))));
      const released = await e.submit({
        type: "release",
        reservationSeq: seqs[0] as number,
        at: 3,
      });
      assert.equal(released.kind, "ok");
      await e.close();
      await first.close();

      const second = open();
      const loaded = await second.load(POOL);
      assert.ok(loaded.snapshot !== undefined, "a snapshot was saved off the reply path");
      const again = entity(second, { snapshotEvery: 3 });
      await again.start();
      assert.equal(again.status, "ready");
      assert.equal(again.view?.reserved, 4);
      assert.equal(again.view?.version, 7);
      const replay = await again.submit(reserve("r-2"));
      assert.equal(seqOf(replay), seqs[2]);
      const twice = await again.submit({
        type: "release",
        reservationSeq: seqs[0] as number,
        at: 4,
      });
      assert.ok(
        twice.kind === "ok" && twice.reply.type === "released" && twice.reply.alreadyReleased,
      );
    });
  });

  test("an append whose outcome is unknown but which was written is answered exactly once, as a success", async () => {
    await withDb(async (open) => {
      const journal = new FaultyJournal(open());
      const e = await configured(journal, 100);
      journal.faults.push("write-then-throw");
      const outcomes = await Promise.all(
        Array.from({ length: 10 }, (_, i) => e.submit(reserve(`r-${i}`))),
      );
      assert.equal(journal.failedAppends, 1);
      assert.ok(
        outcomes.every((o) => o.kind === "ok"),
        JSON.stringify(outcomes),
      );
      const seqs = outcomes.map(seqOf);
      assert.equal(new Set(seqs).size, 10);
      for (const o of outcomes) {
        assert.ok(o.kind === "ok" && o.reply.type === "reserved" && !o.reply.replayed);
      }
      const loaded = await journal.load(POOL);
      assert.equal(loaded.version, 11, "each reservation was written once");
      assert.equal(e.view?.reserved, 10);
    });
  });

  test("an append that failed without writing is decided again and written once", async () => {
    await withDb(async (open) => {
      const journal = new FaultyJournal(open());
      const e = await configured(journal, 100);
      journal.faults.push("throw-without-writing", "throw-without-writing");
      journal.failingLoads = 2;
      const o = await e.submit(reserve("only"));
      assert.equal(seqOf(o), 2);
      assert.equal((await journal.load(POOL)).version, 2);
      assert.equal(journal.failedAppends, 2);
    });
  });

  test("a journal that stays unavailable past the deadline answers UNAVAILABLE, never success", async () => {
    await withDb(async (open) => {
      const journal = new FaultyJournal(open());
      const e = await configured(journal, 100);
      journal.faults.push("write-then-throw");
      journal.failingLoads = 1_000_000;
      const o = await e.submit(reserve("lost-reply"), Date.now() + 100);
      assert.equal(o.kind, "unavailable");
      assert.ok(o.kind === "unavailable");
      assert.equal(o.reason, "JOURNAL_UNAVAILABLE");
      assert.match(o.message, /outcome is unknown/);
      journal.failingLoads = 0;
      // The retry finds the reservation the lost reply was about.
      const retry = await e.submit(reserve("lost-reply"));
      assert.equal(seqOf(retry), 2);
      assert.equal((await journal.load(POOL)).version, 2);
    });
  });

  test("an append conflicting with another writer reloads and decides against the newer state", async () => {
    await withDb(async (open) => {
      const journal = open();
      const e = await configured(journal, 2);
      // Another writer at the same epoch takes one unit behind the entity's back.
      await journal.append({ pool: POOL, shard: SHARD, epoch: 1, expectedVersion: 1 }, [
        { type: "reserved", requestId: "other", units: 1, at: 5 },
      ]);
      const a = await e.submit(reserve("a"));
      const b = await e.submit(reserve("b"));
      assert.equal(seqOf(a), 3);
      assert.equal(b.kind, "rejected");
      assert.ok(b.kind === "rejected");
      assert.equal(b.rejection.code, "INSUFFICIENT_CAPACITY");
      assert.equal(e.view?.reserved, 2);
    });
  });

  test("a pool fenced by a newer owner answers NOT_OWNER and appends nothing more", async () => {
    await withDb(async (open) => {
      const journal = open();
      const e = await configured(journal, 10);
      await journal.fence(POOL, SHARD, 2);
      const o = await e.submit(reserve("late"));
      assert.equal(o.kind, "not_owner");
      assert.ok(o.kind === "not_owner");
      assert.match(o.message, /epoch 1 is fenced/);
      assert.equal(e.status, "fenced");
      assert.equal((await e.submit({ type: "read" })).kind, "not_owner");
      assert.equal((await journal.load(POOL)).version, 1);
    });
  });

  test("an entity started below the pool's fence refuses to serve", async () => {
    await withDb(async (open) => {
      const journal = open();
      await journal.fence(POOL, SHARD, 5);
      const e = entity(journal, { epoch: 4 });
      await e.start();
      assert.equal(e.status, "fenced");
      assert.equal((await e.submit(reserve("x"))).kind, "not_owner");
    });
  });

  test("a read waits for the batch it was decided after, and sees its events", async () => {
    await withDb(async (open) => {
      const journal = new GatedJournal(open());
      const e = await configured(journal, 10);
      journal.hold();
      const first = e.submit(reserve("a", 2));
      const second = e.submit(reserve("b", 3));
      const read = e.submit({ type: "read" });
      let readDone = false;
      void read.then(() => {
        readDone = true;
      });
      await new Promise((r) => setImmediate(r));
      assert.equal(journal.waiting, 1, "the first reserve's append is in flight");
      assert.equal(readDone, false);
      journal.release();
      const view = await read;
      assert.ok(view.kind === "view");
      assert.equal(view.view?.reserved, 5);
      assert.equal(seqOf(await first), 2);
      assert.equal(seqOf(await second), 3);
    });
  });

  test("close answers queued commands NOT_OWNER and lets the in-flight append finish", async () => {
    await withDb(async (open) => {
      const journal = new GatedJournal(open());
      const e = await configured(journal, 10);
      journal.hold();
      const inFlight = e.submit(reserve("in-flight"));
      await new Promise((r) => setImmediate(r));
      const queued = e.submit(reserve("queued"));
      const closing = e.close();
      assert.equal((await queued).kind, "not_owner");
      journal.release();
      await closing;
      assert.equal(seqOf(await inFlight), 2);
      assert.equal(e.status, "closed");
      assert.equal((await e.submit(reserve("after"))).kind, "not_owner");
      assert.equal((await journal.load(POOL)).version, 2);
    });
  });

  test("a command whose deadline passed before it ran is refused and writes nothing", async () => {
    await withDb(async (open) => {
      const journal = open();
      const e = await configured(journal, 10);
      const o = await e.submit(reserve("late"), Date.now() - 1);
      assert.equal(o.kind, "deadline_exceeded");
      assert.equal((await journal.load(POOL)).version, 1);
    });
  });

  test("reserve on a pool never configured is POOL_NOT_FOUND", async () => {
    await withDb(async (open) => {
      const e = entity(open());
      await e.start();
      const o = await e.submit(reserve("x"));
      assert.ok(o.kind === "rejected");
      assert.equal(o.rejection.code, "POOL_NOT_FOUND");
      assert.equal(e.view, undefined);
    });
  });
});
