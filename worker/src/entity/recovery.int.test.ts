import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { initialState, type PoolState, toSnapshot } from "../domain/pool.js";
import { configured, reserved } from "../domain/pool-testkit.js";
import { FencedError, JournalUnavailableError } from "../journal/errors.js";
import type { Journal, LoadedPool } from "../journal/journal.js";
import { SqliteJournal } from "../journal/sqlite-journal.js";
import {
  type RecoveryObserver,
  type RecoveryPlan,
  type RecoveryResult,
  recoverPool,
  replayPool,
} from "./recovery.js";
import { CountingJournal, FaultyJournal, ForwardingJournal } from "./testing-journals.js";

const POOL = "default/recovered";
const SHARD = 3;

async function withJournal(body: (journal: SqliteJournal) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "berth-recovery-"));
  const journal = SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
  try {
    await body(journal);
  } finally {
    await journal.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes a configure and `reservations` reservations at `epoch` (fencing it first). */
async function seed(journal: Journal, reservations: number, epoch = 1): Promise<void> {
  await journal.fence(POOL, SHARD, epoch);
  const events = [configured({ capacity: 100 })];
  for (let i = 0; i < reservations; i++) events.push(reserved(`r${i}`, 1));
  await journal.append({ pool: POOL, shard: SHARD, epoch, expectedVersion: 0 }, events);
}

function plan(overrides: Partial<RecoveryPlan> = {}): RecoveryPlan {
  return {
    pool: POOL,
    shard: SHARD,
    epoch: 1,
    fence: false,
    loaded: undefined,
    firstAttempt: 0,
    backoff: { initialMs: 1, maxMs: 2, jitter: "equal" },
    ...overrides,
  };
}

/** An observer that records what it is told and stops after `attempts` attempts. */
function recorder(attempts = Infinity): RecoveryObserver & { readonly seen: string[] } {
  const seen: string[] = [];
  let made = 0;
  return {
    seen,
    beforeAttempt: () => {
      seen.push("attempt");
      return made++ < attempts;
    },
    unavailable: (error, step, attempt) => {
      assert.ok(error instanceof JournalUnavailableError);
      seen.push(`${step} unavailable at attempt ${attempt}`);
    },
  };
}

function loadedState(result: RecoveryResult): PoolState {
  assert.equal(result.kind, "loaded", JSON.stringify(result));
  if (result.kind !== "loaded") throw new Error("not loaded");
  return result.state;
}

test("a pool is recovered from its snapshot plus the events after it", async () => {
  await withJournal(async (journal) => {
    await seed(journal, 3);
    const first = loadedState(await recoverPool(journal, plan(), recorder()));
    await journal.saveSnapshot(POOL, { seq: 4, state: toSnapshot(first) });
    await journal.append({ pool: POOL, shard: SHARD, epoch: 1, expectedVersion: 4 }, [
      reserved("after", 2),
    ]);
    const result = await recoverPool(journal, plan(), recorder());
    const state = loadedState(result);
    assert.equal(result.kind === "loaded" && result.snapshotSeq, 4);
    assert.equal(state.version, 5);
    assert.equal(state.active.size, 4);
    assert.equal(state.reserved, 5);
  });
});

test("a load that finds the journal unavailable is retried, and each failure reported", async () => {
  await withJournal(async (inner) => {
    await seed(inner, 1);
    const journal = new FaultyJournal(inner);
    journal.failingLoads = 2;
    const observer = recorder();
    const state = loadedState(await recoverPool(journal, plan(), observer));
    assert.equal(state.version, 2);
    assert.deepEqual(observer.seen, [
      "attempt",
      "load unavailable at attempt 0",
      "attempt",
      "load unavailable at attempt 1",
      "attempt",
    ]);
  });
});

test("a recovery the observer stops ends stopped, before its next attempt", async () => {
  await withJournal(async (inner) => {
    await seed(inner, 1);
    const journal = new FaultyJournal(inner);
    journal.failingLoads = 5;
    const observer = recorder(1);
    assert.deepEqual(await recoverPool(journal, plan(), observer), { kind: "stopped" });
    assert.deepEqual(observer.seen, ["attempt", "load unavailable at attempt 0", "attempt"]);
    assert.equal(journal.failingLoads, 4, "no load after the stop");
  });
});

test("a pool fenced above the epoch recovers as fenced, whether found by the fence or by the load", async () => {
  await withJournal(async (journal) => {
    await seed(journal, 1, 5);
    const byFence = await recoverPool(journal, plan({ epoch: 3, fence: true }), recorder());
    assert.equal(byFence.kind, "fenced");
    const byLoad = await recoverPool(journal, plan({ epoch: 3, fence: false }), recorder());
    assert.equal(byLoad.kind, "fenced");
    assert.ok(byLoad.kind === "fenced" && byLoad.error instanceof FencedError);
    assert.equal(byLoad.kind === "fenced" && byLoad.error.fenceEpoch, 5);
    assert.equal(
      byLoad.kind === "fenced" && byLoad.error.message,
      new FencedError(POOL, 3, 5).message,
    );
  });
});

test("a fence refused other than by unavailability breaks the recovery; an unavailable one is retried", async () => {
  await withJournal(async (inner) => {
    await seed(inner, 1);
    let failures: unknown[] = [new JournalUnavailableError("fence lost", false)];
    const journal = new (class extends ForwardingJournal {
      override async fence(pool: string, shard: number, epoch: number): Promise<void> {
        const failure = failures.shift();
        if (failure !== undefined) throw failure;
        return super.fence(pool, shard, epoch);
      }
    })(inner);
    const observer = recorder();
    assert.equal(
      loadedState(await recoverPool(journal, plan({ fence: true }), observer)).version,
      2,
    );
    assert.deepEqual(observer.seen, ["attempt", "fence unavailable at attempt 0", "attempt"]);
    const bug = new TypeError("bad shard");
    failures = [bug];
    assert.deepEqual(await recoverPool(journal, plan({ fence: true }), recorder()), {
      kind: "broken",
      error: bug,
    });
  });
});

test("a pool the shard's recovery loaded at this epoch is replayed without fence or load; one loaded below it is not used", async () => {
  await withJournal(async (inner) => {
    await seed(inner, 2);
    const loaded = await inner.load(POOL);
    const journal = new CountingJournal(inner);
    const atEpoch = plan({ fence: true, loaded });
    assert.equal(loadedState(await recoverPool(journal, atEpoch, recorder())).version, 3);
    assert.equal(journal.loads, 0);
    const stale: LoadedPool = { ...loaded, events: [], version: 0, fenceEpoch: 0 };
    const below = plan({ fence: true, loaded: stale });
    assert.equal(loadedState(await recoverPool(journal, below, recorder())).version, 3);
    assert.equal(journal.loads, 1, "loaded from the journal instead");
  });
});

test("a journal whose snapshot or events do not add up breaks the recovery instead of serving", async () => {
  const other = initialState("default/other");
  const wrongPool: LoadedPool = {
    snapshot: { seq: 0, state: toSnapshot(other) },
    events: [],
    version: 0,
    fenceEpoch: 1,
  };
  assert.throws(
    () => replayPool(POOL, wrongPool),
    new Error(`snapshot of pool ${POOL} at seq 0 holds pool default/other at version 0`),
  );
  const short: LoadedPool = {
    snapshot: undefined,
    events: [{ seq: 1, event: configured({ capacity: 1 }) }],
    version: 2,
    fenceEpoch: 1,
  };
  assert.throws(
    () => replayPool(POOL, short),
    new Error(`pool ${POOL} replayed to version 1, journal says 2`),
  );
  await withJournal(async (journal) => {
    const result = await recoverPool(journal, plan({ loaded: short }), recorder());
    assert.equal(result.kind, "broken");
  });
});
