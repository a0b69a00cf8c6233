import assert from "node:assert/strict";
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { DatabaseSync } from "node:sqlite";
import type { Readable } from "node:stream";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { FencedError, JournalUnavailableError, VersionConflictError } from "./errors.js";
import type { Journal } from "./journal.js";
import { journalConformanceSuite } from "./journal-suite.js";
import { SQLITE_JOURNAL_SCHEMA_VERSION, SqliteJournal } from "./sqlite-journal.js";

const childScript = fileURLToPath(new URL("./sqlite-journal.child.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

function tempDb(): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "berth-journal-"));
  return {
    path: join(dir, "journal.db"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Runs `body` on a fresh database file, closing every journal it opened. */
async function withDb(
  body: (
    path: string,
    open: (o?: Parameters<typeof SqliteJournal.open>[1]) => SqliteJournal,
  ) => Promise<void>,
): Promise<void> {
  const db = tempDb();
  const opened: Journal[] = [];
  try {
    await body(db.path, (o) => {
      const j = SqliteJournal.open(db.path, o);
      opened.push(j);
      return j;
    });
  } finally {
    for (const j of opened) await j.close();
    db.cleanup();
  }
}

journalConformanceSuite("SqliteJournal", async () => {
  const db = tempDb();
  return {
    journal: SqliteJournal.open(db.path),
    reopen: async () => SqliteJournal.open(db.path),
    cleanup: async () => db.cleanup(),
  };
});

journalConformanceSuite("SqliteJournal with synchronous NORMAL", async () => {
  const db = tempDb();
  return {
    journal: SqliteJournal.open(db.path, { synchronous: "NORMAL" }),
    reopen: async () => SqliteJournal.open(db.path, { synchronous: "NORMAL" }),
    cleanup: async () => db.cleanup(),
  };
});

interface Child {
  readonly proc: ChildProcessByStdio<null, Readable, Readable>;
  /** Resolves on the child's "ready" line. */
  readonly ready: Promise<void>;
  /** Every "committed" line so far, in order. */
  readonly commits: { version: number; first: number; size: number }[];
  /** Resolves with the exit code / signal once the child has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** Resolves once at least `n` commits have been printed. */
  waitForCommits(n: number): Promise<void>;
}

function spawnChild(args: {
  db: string;
  pool: string;
  shard: number;
  tag: string;
  count: number;
  batch: number;
  synchronous: "FULL" | "NORMAL";
}): Child {
  const proc = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      childScript,
      args.db,
      args.pool,
      String(args.shard),
      args.tag,
      String(args.count),
      String(args.batch),
      args.synchronous,
    ],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (d: string) => {
    stderr += d;
  });
  const commits: Child["commits"] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    onReady = resolve;
  });
  const lines = createInterface({ input: proc.stdout });
  lines.on("line", (line) => {
    if (line === "ready") return onReady();
    const m = /^committed (\d+) (\d+) (\d+)$/.exec(line);
    if (!m) return;
    commits.push({ version: Number(m[1]), first: Number(m[2]), size: Number(m[3]) });
    for (const w of waiters.filter((w) => commits.length >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stderr: string;
  }>((resolve) => {
    proc.on("close", (code, signal) => resolve({ code, signal, stderr }));
  });
  const failIfExited = <T>(p: Promise<T>): Promise<T> =>
    Promise.race([
      p,
      exited.then((x) => {
        throw new Error(`child exited early (code ${x.code}, signal ${x.signal}): ${x.stderr}`);
      }),
    ]);
  return {
    proc,
    ready: failIfExited(ready),
    commits,
    exited,
    waitForCommits: (n) =>
      failIfExited(
        commits.length >= n
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              waiters.push({ n, resolve });
            }),
      ),
  };
}

/**
 * Yields to the event loop, and now and then sleeps 1 ms, so that other writers (in this
 * process or another) get a turn at the lock and the child's stdout is read.
 */
function pause(): Promise<void> {
  return new Promise((resolve) =>
    Math.random() < 0.5 ? setImmediate(resolve) : setTimeout(resolve, 1),
  );
}

/** Appends one-event batches with reload-and-retry on conflict; returns the versions it committed. */
async function appendWithRetry(
  j: Journal,
  pool: string,
  shard: number,
  writer: string,
  count: number,
): Promise<{ version: number; i: number }[]> {
  const committed: { version: number; i: number }[] = [];
  let expected = (await j.load(pool)).version;
  for (let i = 0; i < count; i++) {
    for (;;) {
      try {
        expected = await j.append({ pool, shard, epoch: 1, expectedVersion: expected }, [
          { writer, i },
        ]);
        committed.push({ version: expected, i });
        break;
      } catch (e: unknown) {
        if (!(e instanceof VersionConflictError)) throw e;
        expected = (await j.load(pool)).version;
      }
      await pause();
    }
    await pause();
  }
  return committed;
}

/** Asserts the pool holds seqs 1..n, each writer's indexes 0..count-1 exactly once. */
function assertEveryEventOnce(
  events: readonly { seq: number; event: unknown }[],
  writers: Record<string, number>,
): void {
  const total = Object.values(writers).reduce((a, b) => a + b, 0);
  assert.deepEqual(
    events.map((e) => e.seq),
    Array.from({ length: total }, (_, i) => i + 1),
  );
  for (const [writer, count] of Object.entries(writers)) {
    const mine = events
      .map((e) => e.event as { writer: string; i: number })
      .filter((e) => e.writer === writer)
      .map((e) => e.i);
    assert.deepEqual(
      mine,
      Array.from({ length: count }, (_, i) => i),
      `writer ${writer}'s events are missing, duplicated or out of order`,
    );
  }
}

describe("SqliteJournal on a file shared by connections and processes", () => {
  test("the file is in WAL mode with the current schema version, and reopening it is idempotent", async () => {
    await withDb(async (path, open) => {
      const a = open();
      await a.append({ pool: "ns/p", shard: 1, epoch: 0, expectedVersion: 0 }, ["a"]);
      const b = open();
      assert.equal((await b.load("ns/p")).version, 1);
      const raw = new DatabaseSync(path);
      try {
        assert.deepEqual({ ...raw.prepare("PRAGMA journal_mode").get() }, { journal_mode: "wal" });
        assert.deepEqual(
          { ...raw.prepare("PRAGMA user_version").get() },
          { user_version: SQLITE_JOURNAL_SCHEMA_VERSION },
        );
        const tables = raw
          .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
          .all()
          .map((r) => r.name);
        assert.deepEqual(tables, ["events", "pools", "snapshots"]);
      } finally {
        raw.close();
      }
    });
  });

  test("a file whose schema is newer than this build is refused", async () => {
    await withDb(async (path, open) => {
      await open().close();
      const raw = new DatabaseSync(path);
      raw.exec(`PRAGMA user_version = ${SQLITE_JOURNAL_SCHEMA_VERSION + 1}`);
      raw.close();
      assert.throws(() => open(), {
        name: "Error",
        message: `journal schema version ${SQLITE_JOURNAL_SCHEMA_VERSION + 1} is newer than this build's ${SQLITE_JOURNAL_SCHEMA_VERSION}; upgrade Berth`,
      });
    });
  });

  test("open rejects bad options with precise errors", () => {
    assert.throws(() => SqliteJournal.open(""), {
      name: "TypeError",
      message: "path must be a non-empty string",
    });
    assert.throws(
      () => SqliteJournal.open("/tmp/x.db", { synchronous: "OFF" as unknown as "FULL" }),
      { name: "RangeError", message: 'synchronous must be "FULL" or "NORMAL", got OFF' },
    );
    assert.throws(() => SqliteJournal.open("/tmp/x.db", { busyTimeoutMs: -5 }), {
      name: "RangeError",
      message: "busyTimeoutMs must be a non-negative safe integer, got -5",
    });
  });

  test("a file that cannot be opened fails with JournalUnavailableError", () => {
    assert.throws(
      () => SqliteJournal.open("/nonexistent-dir-for-berth/journal.db"),
      (e: unknown) => {
        assert.ok(e instanceof JournalUnavailableError);
        assert.match(e.message, /^cannot open journal \/nonexistent-dir-for-berth\/journal\.db: /);
        assert.equal(e.outcomeUnknown, false);
        return true;
      },
    );
  });

  test("two instances in one process interleave appends on one pool without losing or duplicating any", async () => {
    await withDb(async (_path, open) => {
      const a = open();
      const b = open();
      const pool = "ns/shared";
      const [fromA, fromB] = await Promise.all([
        appendWithRetry(a, pool, 3, "a", 150),
        appendWithRetry(b, pool, 3, "b", 150),
      ]);
      const loaded = await b.load(pool);
      assertEveryEventOnce(loaded.events, { a: 150, b: 150 });
      for (const c of [...fromA, ...fromB]) {
        assert.equal(loaded.events[c.version - 1]?.seq, c.version);
      }
      await a.close();
      assert.equal(await b.append({ pool, shard: 3, epoch: 1, expectedVersion: 300 }, ["z"]), 301);
    });
  });

  test("an append that cannot get the write lock within busyTimeoutMs fails with JournalUnavailableError and writes nothing", async () => {
    await withDb(async (path, open) => {
      const j = open({ busyTimeoutMs: 60 });
      const pool = "ns/locked";
      await j.append({ pool, shard: 0, epoch: 0, expectedVersion: 0 }, ["a"]);
      const holder = new DatabaseSync(path);
      holder.exec("BEGIN IMMEDIATE");
      try {
        await assert.rejects(
          j.append({ pool, shard: 0, epoch: 0, expectedVersion: 1 }, ["b"]),
          (e: unknown) => {
            assert.ok(e instanceof JournalUnavailableError);
            assert.equal(
              e.message,
              `append on pool ${pool}: journal ${path} stayed locked for 60 ms`,
            );
            assert.equal(e.outcomeUnknown, false);
            return true;
          },
        );
        // Readers are not blocked by a writer in WAL mode.
        assert.equal((await j.load(pool)).version, 1);
      } finally {
        holder.exec("ROLLBACK");
        holder.close();
      }
      assert.equal(await j.append({ pool, shard: 0, epoch: 0, expectedVersion: 1 }, ["b"]), 2);
    });
  });

  test("an append waiting for the write lock keeps the event loop running and succeeds once the lock is released", async () => {
    await withDb(async (path, open) => {
      const j = open({ busyTimeoutMs: 30_000, lockPollMs: 5 });
      const pool = "ns/waits";
      const holder = new DatabaseSync(path);
      holder.exec("BEGIN IMMEDIATE");
      let released = false;
      const pending = j.append({ pool, shard: 0, epoch: 0, expectedVersion: 0 }, ["a"]);
      // This timer can only fire if the waiting append yields the event loop.
      setTimeout(() => {
        released = true;
        holder.exec("ROLLBACK");
        holder.close();
      }, 50);
      assert.equal(await pending, 1);
      assert.ok(released);
    });
  });

  test("writes queued while the thread waits for the lock commit together, in call order, each with its own check", async () => {
    await withDb(async (path, open) => {
      const j = open({ busyTimeoutMs: 30_000 });
      const pool = "ns/queued";
      const other = "ns/queued-other";
      const holder = new DatabaseSync(path);
      holder.exec("BEGIN IMMEDIATE");
      // None of these is awaited before the next: each sees the ones before it.
      const calls = [
        j.append({ pool, shard: 5, epoch: 1, expectedVersion: 0 }, ["a"]),
        j.append({ pool, shard: 5, epoch: 1, expectedVersion: 1 }, ["b", "c"]),
        j.fence(pool, 5, 2),
        j.append({ pool, shard: 5, epoch: 1, expectedVersion: 3 }, ["stale"]),
        j.append({ pool, shard: 5, epoch: 2, expectedVersion: 1 }, ["conflict"]),
        j.append({ pool: other, shard: 5, epoch: 0, expectedVersion: 0 }, ["x"]),
        j.saveSnapshot(pool, { seq: 3, state: { n: 3 } }),
        j.append({ pool, shard: 5, epoch: 2, expectedVersion: 3 }, ["d"]),
      ].map((p) =>
        p.then(
          (v) => ({ v }),
          (e: unknown) => ({ e }),
        ),
      );
      setTimeout(() => {
        holder.exec("ROLLBACK");
        holder.close();
      }, 30);
      const out = await Promise.all(calls);
      assert.deepEqual(out.slice(0, 3), [{ v: 1 }, { v: 3 }, { v: undefined }]);
      const stale = out[3] as { e: unknown };
      assert.ok(stale.e instanceof FencedError);
      assert.equal(stale.e.message, `pool ${pool} is fenced at epoch 2; writer epoch 1 is stale`);
      const conflict = out[4] as { e: unknown };
      assert.ok(conflict.e instanceof VersionConflictError);
      assert.equal(conflict.e.actualVersion, 3);
      assert.deepEqual(out.slice(5), [{ v: 1 }, { v: undefined }, { v: 4 }]);
      const loaded = await j.load(pool);
      assert.deepEqual(loaded.snapshot, { seq: 3, state: { n: 3 } });
      assert.deepEqual(loaded.events, [{ seq: 4, event: "d" }]);
      assert.equal(loaded.fenceEpoch, 2);
    });
  });

  test("when a transaction of several writes cannot get the lock, each write fails with JournalUnavailableError naming the group", async () => {
    await withDb(async (path, open) => {
      const j = open({ busyTimeoutMs: 60 });
      const holder = new DatabaseSync(path);
      holder.exec("BEGIN IMMEDIATE");
      try {
        const results = await Promise.allSettled([
          j.append({ pool: "ns/g1", shard: 0, epoch: 0, expectedVersion: 0 }, ["a"]),
          j.fence("ns/g2", 0, 1),
        ]);
        const messages = results.map((r) => {
          assert.equal(r.status, "rejected");
          const e = (r as PromiseRejectedResult).reason as unknown;
          assert.ok(e instanceof JournalUnavailableError);
          assert.equal(e.outcomeUnknown, false);
          return e.message;
        });
        assert.deepEqual(messages, [
          `append on pool ns/g1, in a group commit with 1 other writes: journal ${path} stayed locked for 60 ms`,
          `fence on pool ns/g2, in a group commit with 1 other writes: journal ${path} stayed locked for 60 ms`,
        ]);
      } finally {
        holder.exec("ROLLBACK");
        holder.close();
      }
      assert.equal((await j.load("ns/g1")).version, 0);
    });
  });

  test("if the journal's thread dies, every call it has not answered fails (writes with outcome unknown) and later calls fail at once", async () => {
    await withDb(async (path, open) => {
      const j = open({ busyTimeoutMs: 30_000 });
      const pool = "ns/thread-dies";
      assert.equal(await j.append({ pool, shard: 1, epoch: 0, expectedVersion: 0 }, ["a"]), 1);
      // The thread waits for this lock, so the calls below stay unanswered.
      const holder = new DatabaseSync(path);
      holder.exec("BEGIN IMMEDIATE");
      try {
        const pending = [
          j.append({ pool, shard: 1, epoch: 0, expectedVersion: 1 }, ["b"]),
          j.append({ pool, shard: 1, epoch: 0, expectedVersion: 2 }, ["c"]),
          j.load(pool),
        ].map((p) =>
          p.then(
            () => undefined,
            (e: unknown) => e,
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 30));
        await j.crashThreadForTesting();
        const [b, c, load] = await Promise.all(pending);
        for (const [e, label] of [
          [b, `append on pool ${pool}`],
          [c, `append on pool ${pool}`],
        ] as const) {
          assert.ok(e instanceof JournalUnavailableError);
          assert.equal(e.outcomeUnknown, true);
          assert.equal(
            e.message,
            `${label}: the thread of journal ${path} ended before it answered (it exited with code 1); the outcome is unknown`,
          );
        }
        assert.ok(load instanceof JournalUnavailableError);
        assert.equal(load.outcomeUnknown, false);
        assert.equal(
          load.message,
          `load: the thread of journal ${path} ended before it answered (it exited with code 1)`,
        );
        await assert.rejects(j.fence(pool, 1, 5), (e: unknown) => {
          assert.ok(e instanceof JournalUnavailableError);
          assert.equal(e.outcomeUnknown, false);
          assert.equal(
            e.message,
            `fence on pool ${pool}: the thread of journal ${path} has ended (it exited with code 1)`,
          );
          return true;
        });
      } finally {
        holder.exec("ROLLBACK");
        holder.close();
      }
      await j.close();
      // Nothing after the first append was written; a new journal works.
      const fresh = open();
      assert.equal((await fresh.load(pool)).version, 1);
    });
  });

  test("close() lets the calls made before it finish and commit, then rejects later calls", async () => {
    await withDb(async (path, open) => {
      const j = open({ busyTimeoutMs: 30_000 });
      const pool = "ns/closing";
      const holder = new DatabaseSync(path);
      holder.exec("BEGIN IMMEDIATE");
      const appends = Array.from({ length: 20 }, (_, i) =>
        j.append({ pool, shard: 1, epoch: 0, expectedVersion: i }, [`e${i}`]),
      );
      const closed = j.close();
      assert.equal(j.close(), closed, "closing twice returns the same promise");
      await assert.rejects(
        j.append({ pool, shard: 1, epoch: 0, expectedVersion: 20 }, ["late"]),
        (e: unknown) => {
          assert.ok(e instanceof JournalUnavailableError);
          assert.equal(e.message, `append on pool ${pool}: journal ${path} is closed`);
          assert.equal(e.outcomeUnknown, false);
          return true;
        },
      );
      setTimeout(() => {
        holder.exec("ROLLBACK");
        holder.close();
      }, 30);
      assert.deepEqual(
        await Promise.all(appends),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      await closed;
      const loaded = await open().load(pool);
      assert.equal(loaded.version, 20);
    });
  });

  test("a second process racing the parent on one pool writes every seq exactly once", async () => {
    await withDb(async (path, open) => {
      const j = open();
      const pool = "ns/cross-process";
      const count = 300;
      const child = spawnChild({
        db: path,
        pool,
        shard: 9,
        tag: "child",
        count,
        batch: 1,
        synchronous: "FULL",
      });
      await child.ready;
      const mine = await appendWithRetry(j, pool, 9, "parent", count);
      const exit = await child.exited;
      assert.equal(exit.code, 0, exit.stderr);
      assert.equal(child.commits.length, count);

      const loaded = await j.load(pool);
      assertEveryEventOnce(loaded.events, { parent: count, child: count });
      for (const c of mine) {
        assert.deepEqual(loaded.events[c.version - 1]?.event, { writer: "parent", i: c.i });
      }
      for (const c of child.commits) {
        assert.deepEqual(loaded.events[c.version - 1]?.event, { writer: "child", i: c.first });
      }
      assert.deepEqual(await j.listPools(9), [pool]);
    });
  });

  test("several processes creating the same new file at once agree on one schema and lose no event", async () => {
    await withDb(async (path, open) => {
      const pool = "ns/fresh";
      const children = ["c0", "c1", "c2"].map((tag) =>
        spawnChild({ db: path, pool, shard: 4, tag, count: 60, batch: 2, synchronous: "NORMAL" }),
      );
      for (const child of children) {
        const exit = await child.exited;
        assert.equal(exit.code, 0, exit.stderr);
      }
      const loaded = await open().load(pool);
      assertEveryEventOnce(loaded.events, { c0: 60, c1: 60, c2: 60 });
    });
  });

  for (const synchronous of ["FULL", "NORMAL"] as const) {
    test(`after the writing process is killed with SIGKILL (synchronous ${synchronous}), a reopened journal has every commit its thread reported, and whole batches only`, async () => {
      await withDb(async (path, open) => {
        const pool = "ns/killed";
        const batch = 4;
        const child = spawnChild({
          db: path,
          pool,
          shard: 2,
          tag: "child",
          count: 1_000_000,
          batch,
          synchronous,
        });
        await child.ready;
        await child.waitForCommits(40);
        child.proc.kill("SIGKILL");
        const exit = await child.exited;
        assert.equal(exit.signal, "SIGKILL");
        const reported = [...child.commits];
        assert.ok(reported.length >= 40);

        const j = open();
        const loaded = await j.load(pool);
        const last = reported[reported.length - 1];
        assert.ok(last !== undefined);
        assert.ok(
          loaded.version >= last.version,
          `lost commits: reported ${last.version}, found ${loaded.version}`,
        );
        assert.equal(loaded.version % batch, 0, "a batch was cut in half");
        assertEveryEventOnce(loaded.events, { child: loaded.version });
        for (const c of reported) {
          const events = loaded.events.slice(c.version - c.size, c.version).map((e) => e.event);
          assert.deepEqual(
            events,
            Array.from({ length: c.size }, (_, k) => ({ writer: "child", i: c.first + k })),
          );
        }
        // The killed writer's lock is gone: the journal takes writes again.
        const v = loaded.version;
        assert.equal(
          await j.append({ pool, shard: 2, epoch: 1, expectedVersion: v }, ["after"]),
          v + 1,
        );
      });
    });
  }
});
