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
import { JournalUnavailableError, VersionConflictError } from "./errors.js";
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

  test("after the writing process is killed with SIGKILL, a reopened journal has every commit it reported, and whole batches only", async () => {
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
        synchronous: "NORMAL",
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
});
