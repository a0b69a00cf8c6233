import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pino } from "pino";
import type { PoolSpec } from "../domain/pool.js";
import { release as releaseOf, secretOf } from "../domain/pool-testkit.js";
import type { AppendTarget, Journal } from "../journal/journal.js";
import { SqliteJournal } from "../journal/sqlite-journal.js";
import type { EntityOutcome } from "./entity-outcome.js";
import { PoolEntity, type PoolEntitySettings, type PoolEntityTarget } from "./pool-entity.js";

type PoolEntityOptions = PoolEntityTarget & PoolEntitySettings;

import {
  CountingJournal,
  FaultyJournal,
  ForwardingJournal,
  GatedJournal,
} from "./testing-journals.js";

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
  const { pool = POOL, shard = SHARD, epoch = 1, recovered, ...settings } = extra;
  return new PoolEntity(
    { pool, shard, epoch, ...(recovered === undefined ? {} : { recovered }) },
    {
      journal,
      logger,
      fenceOnStart: true,
      backoff: { initialMs: 1, maxMs: 5, jitter: "equal" },
      ...settings,
    },
  );
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
  ({ type: "reserve", units, requestId, at: 2, secret: secretOf(requestId) }) as const;

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
      const released = await e.submit(releaseOf(seqs[0] as number, "r-0", 3));
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
      const twice = await again.submit(releaseOf(seqs[0] as number, "r-0", 4));
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

  test("a journal that keeps failing is warned about once per run of failures, not once per retry", async () => {
    await withDb(async (open) => {
      const journal = new FaultyJournal(open());
      const lines: { level: number; event?: string; failures?: number }[] = [];
      const captured = pino(
        { level: "debug" },
        {
          write: (line: string) => {
            lines.push(JSON.parse(line));
          },
        },
      );
      const e = await configured(journal, 100, { logger: captured });
      journal.faults.push("throw-without-writing");
      journal.failingLoads = 40;
      const o = await e.submit(reserve("through-an-outage"), Date.now() + 60_000);
      assert.equal(seqOf(o), 2);
      const warnings = lines.filter((l) => l.level >= 40).map((l) => l.event);
      assert.deepEqual(warnings, ["entity.append_failed"]);
      assert.equal(lines.filter((l) => l.event === "entity.load_retry").length, 40);
      const recovered = lines.find((l) => l.event === "entity.journal_answers_again");
      assert.equal(recovered?.failures, 41);
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

  test("commands waiting in one entity are never another's, though idle entities share one empty queue", async () => {
    await withDb(async (open) => {
      const journal = new GatedJournal(open());
      // Neither has had a command yet: both start on the shared empty queue.
      const a = entity(journal, { pool: "default/a" });
      const b = entity(journal, { pool: "default/b" });
      await Promise.all([a.start(), b.start()]);
      journal.hold();
      const configuring = a.submit({ type: "configure", spec: spec(10), at: 1 });
      await new Promise((r) => setImmediate(r));
      assert.equal(journal.waiting, 1, "a's configure is in flight");
      let answered = false;
      const queued = a.submit(reserve("waits-in-a"));
      void queued.then(() => {
        answered = true;
      });
      // Closing b answers what waits in b's queue: nothing of a's.
      await b.close();
      await new Promise((r) => setImmediate(r));
      assert.equal(answered, false, "b's close did not answer a's command");
      journal.release();
      assert.equal((await configuring).kind, "ok");
      assert.equal(seqOf(await queued), 2);
      assert.equal((await b.submit(reserve("after"))).kind, "not_owner");
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

/** Refuses appends of more than `limit` events with RangeError, as CassandraJournal does. */
class BucketedJournal extends ForwardingJournal {
  appends = 0;
  largest = 0;
  constructor(
    inner: Journal,
    private readonly limit: number,
    /** Whether it says so through maxAppendEvents (CassandraJournal does). */
    declare: boolean,
  ) {
    super(inner);
    if (declare) Object.assign(this, { maxAppendEvents: limit });
    else Object.assign(this, { maxAppendEvents: undefined });
  }
  override async append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    this.appends++;
    this.largest = Math.max(this.largest, events.length);
    if (events.length > this.limit) {
      throw new RangeError(
        `append of ${events.length} events exceeds the journal's bucket size ${this.limit}`,
      );
    }
    return this.inner.append(target, events);
  }
}

/** Records every append's size: 0 is a fence-and-version check. */
class RecordingJournal extends ForwardingJournal {
  readonly sizes: number[] = [];
  override async append(target: AppendTarget, events: readonly unknown[]): Promise<number> {
    this.sizes.push(events.length);
    return this.inner.append(target, events);
  }
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("PoolEntity: answers from a stale state", () => {
  test("a former owner whose state lags answers NOT_OWNER, never INSUFFICIENT_CAPACITY or stale reads", async () => {
    await withDb(async (open) => {
      const old = await configured(open(), 1);
      const r0 = seqOf(await old.submit(reserve("r-0")));
      // A newer owner takes the pool over, releases r-0 and reserves r-1: `old` never hears.
      const next = entity(open(), { epoch: 2 });
      await next.start();
      assert.equal(next.status, "ready");
      const released = await next.submit(releaseOf(r0, "r-0", 3));
      assert.equal(released.kind, "ok");
      const r1 = seqOf(await next.submit(reserve("r-1")));
      // The retry of r-1 lands at the former owner: its state says the pool is full.
      const retry = await old.submit(reserve("r-1"));
      assert.equal(retry.kind, "not_owner", JSON.stringify(retry));
      assert.equal(old.status, "fenced");
      assert.equal((await old.submit({ type: "read" })).kind, "not_owner");
      assert.equal((await old.submit(releaseOf(r1, "r-1", 4))).kind, "not_owner");
      assert.equal((await next.submit({ type: "read" })).kind, "view");
      assert.equal(next.view?.reserved, 1);
    });
  });

  test("each kind of stale answer is checked against the journal: rejections, reads, no-op configure", async () => {
    const stale = [
      { name: "INSUFFICIENT_CAPACITY", command: reserve("late") },
      { name: "RESERVATION_NOT_FOUND", command: releaseOf(99, "r-0", 3) },
      { name: "read", command: { type: "read" } },
      { name: "unchanged configure", command: { type: "configure", spec: spec(1), at: 3 } },
    ] as const;
    for (const { name, command } of stale) {
      await withDb(async (open) => {
        const old = await configured(open(), 1);
        await old.submit(reserve("r-0"));
        const next = entity(open(), { epoch: 2 });
        await next.start();
        const o = await old.submit(command);
        assert.equal(o.kind, "not_owner", `${name}: ${JSON.stringify(o)}`);
      });
    }
  });

  test("a stale rejection at the same epoch reloads and decides again against the journal", async () => {
    await withDb(async (open) => {
      const journal = open();
      const e = await configured(journal, 1);
      const r0 = seqOf(await e.submit(reserve("r-0")));
      // Another writer at the same epoch releases r-0 behind the entity's back.
      await journal.append({ pool: POOL, shard: SHARD, epoch: 1, expectedVersion: 2 }, [
        { type: "released", reservationSeq: r0, units: 1, at: 3 },
      ]);
      const read = await e.submit({ type: "read" });
      assert.ok(read.kind === "view");
      assert.equal(read.view?.reserved, 0, "the read saw the journal's latest state");
      assert.equal(read.view?.version, 3);
      assert.equal(seqOf(await e.submit(reserve("b"))), 4, "not INSUFFICIENT_CAPACITY");
    });
  });

  test("one journal check per batch of stale-sensitive answers; none for replays; none with events", async () => {
    await withDb(async (open) => {
      const journal = new RecordingJournal(open());
      const e = await configured(journal, 1);
      await e.submit(reserve("r-0"));
      journal.sizes.length = 0;
      // 20 rejections and reads arriving together: one batch, one check.
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          e.submit(i % 2 === 0 ? reserve(`full-${i}`) : { type: "read" }),
        ),
      );
      assert.ok(answers.every((o) => o.kind === "rejected" || o.kind === "view"));
      assert.deepEqual(journal.sizes, [0]);
      // A replay is true whoever owns the pool now: answered without the journal.
      journal.sizes.length = 0;
      const replay = await e.submit(reserve("r-0"));
      assert.ok(replay.kind === "ok" && replay.reply.type === "reserved" && replay.reply.replayed);
      assert.deepEqual(journal.sizes, []);
      // A rejection in a batch with events rides on that batch's append.
      journal.sizes.length = 0;
      const release = e.submit(releaseOf(2, "r-0", 3));
      const rejected = e.submit(releaseOf(99, "r-0", 3));
      assert.equal((await release).kind, "ok");
      assert.equal((await rejected).kind, "rejected");
      assert.deepEqual(journal.sizes, [1]);
    });
  });

  test("a rejection decided before its batch's events is answered only after their append", async () => {
    await withDb(async (open) => {
      const journal = new GatedJournal(open());
      const e = await configured(journal, 1);
      const r0 = seqOf(await e.submit(reserve("r-0")));
      journal.hold();
      const rejected = e.submit(reserve("full"));
      const release = e.submit(releaseOf(r0, "r-0", 3));
      let answered = false;
      void rejected.then(() => {
        answered = true;
      });
      for (let i = 0; i < 100 && journal.waiting === 0; i++) await wait(1);
      assert.equal(journal.waiting, 1);
      assert.equal(answered, false, "the rejection waits for the batch's append");
      journal.release();
      const o = await rejected;
      assert.ok(o.kind === "rejected");
      assert.equal(o.rejection.code, "INSUFFICIENT_CAPACITY");
      assert.equal((await release).kind, "ok");
    });
  });
});

describe("PoolEntity: failures it must not retry forever, or leave unanswered", () => {
  test("batches never exceed the journal's maxAppendEvents", async () => {
    await withDb(async (open) => {
      const journal = new BucketedJournal(open(), 100, true);
      const e = await configured(journal, 1_000_000);
      const outcomes = await Promise.all(
        Array.from({ length: 300 }, (_, i) => e.submit(reserve(`r-${i}`))),
      );
      assert.ok(
        outcomes.every((o) => o.kind === "ok"),
        JSON.stringify(outcomes.find((o) => o.kind !== "ok")),
      );
      assert.ok(journal.largest <= 100, `largest append ${journal.largest}`);
      assert.equal((await journal.load(POOL)).version, 301);
    });
  });

  test("a batch the journal refuses as invalid (RangeError, TypeError) answers INTERNAL at once", async () => {
    for (const error of [RangeError, TypeError]) {
      await withDb(async (open) => {
        class Refusing extends ForwardingJournal {
          appends = 0;
          refuse = false;
          override async append(target: AppendTarget, events: readonly unknown[]) {
            this.appends++;
            if (this.refuse && events.length > 0) throw new error("refused as invalid");
            return this.inner.append(target, events);
          }
        }
        const journal = new Refusing(open());
        const e = await configured(journal, 100);
        journal.refuse = true;
        const before = journal.appends;
        // Deadlines far away: an answer held to them would be DEADLINE_EXCEEDED or
        // UNAVAILABLE, never INTERNAL.
        const outcomes = await Promise.all(
          Array.from({ length: 5 }, (_, i) => e.submit(reserve(`r-${i}`), Date.now() + 60_000)),
        );
        for (const o of outcomes)
          assert.equal(o.kind, "internal", `${error.name}: ${JSON.stringify(o)}`);
        assert.equal(journal.appends - before, 1, "not retried");
        // The refused events are gone from the entity's state: it still serves.
        journal.refuse = false;
        assert.equal(seqOf(await e.submit(reserve("after"))), 2);
        assert.equal(e.view?.reserved, 1);
      });
    }
  });

  test("an oversized batch a journal refuses without saying its limit is not retried forever", async () => {
    await withDb(async (open) => {
      const journal = new BucketedJournal(open(), 100, false);
      const e = await configured(journal, 1_000_000, { maxBatchEvents: 256 });
      // Deadlines far away: retrying until them would end in DEADLINE_EXCEEDED or
      // UNAVAILABLE, after many appends.
      const outcomes = await Promise.all(
        Array.from({ length: 300 }, (_, i) => e.submit(reserve(`r-${i}`), Date.now() + 60_000)),
      );
      assert.ok(
        outcomes.every((o) => o.kind === "ok" || o.kind === "internal"),
        "no UNAVAILABLE (outcome unknown) for a batch that was never written",
      );
      assert.ok(journal.appends < 10, `${journal.appends} appends`);
    });
  });

  test("a metrics callback that throws after a durable append leaves nothing unanswered", async () => {
    await withDb(async (open) => {
      const journal = open();
      let n = 0;
      const e = await configured(journal, 10, {
        metrics: {
          observeAppend() {
            if (++n >= 2) throw new Error("metrics bug");
          },
        },
      });
      const o = await Promise.race([
        e.submit(reserve("x"), Date.now() + 500),
        wait(2000).then(() => "still pending" as const),
      ]);
      assert.notEqual(o, "still pending");
      assert.equal(seqOf(o as EntityOutcome), 2);
      assert.equal(e.status, "ready");
      assert.equal((await journal.load(POOL)).version, 2);
      assert.equal(seqOf(await e.submit(reserve("y"))), 3);
    });
  });

  test("an unexpected exception answers the batch in flight UNAVAILABLE and the command in hand INTERNAL", async () => {
    await withDb(async (open) => {
      const e = await configured(open(), 10);
      const poisoned = {
        type: "reserve",
        units: 1,
        requestId: "poison",
        secret: secretOf("poison"),
        get at(): number {
          throw new Error("a bug outside the decider's checks");
        },
      } as const;
      const inBatch = e.submit(reserve("in-batch"));
      const inHand = e.submit(poisoned);
      const queuedBehind = e.submit(reserve("behind"));
      const settled = await Promise.race([
        Promise.all([inBatch, inHand, queuedBehind]),
        wait(2000).then(() => "still pending" as const),
      ]);
      assert.notEqual(settled, "still pending");
      const [a, b, c] = settled as EntityOutcome[];
      assert.ok(a?.kind === "unavailable", JSON.stringify(a));
      assert.match(a.message, /outcome is unknown/);
      assert.equal(b?.kind, "internal");
      assert.ok(c !== undefined && c.kind !== "ok");
      assert.equal(e.status, "broken");
    });
  });

  test("an append whose reported version is off is retried, and its first caller is not told replayed", async () => {
    await withDb(async (open) => {
      class OffByOne extends ForwardingJournal {
        armed = false;
        override async append(target: AppendTarget, events: readonly unknown[]) {
          const v = await this.inner.append(target, events);
          if (this.armed && events.length > 0) {
            this.armed = false;
            return v + 1;
          }
          return v;
        }
      }
      const journal = new OffByOne(open());
      const e = await configured(journal, 10);
      journal.armed = true;
      const o = await e.submit(reserve("mine"));
      assert.equal(seqOf(o), 2);
      assert.ok(o.kind === "ok" && o.reply.type === "reserved");
      assert.equal(o.reply.replayed, false, "its own write, not a replay");
      assert.equal((await journal.load(POOL)).version, 2, "written once");
    });
  });
});
