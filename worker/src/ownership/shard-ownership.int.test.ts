import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { internal, StaticShardMapSource, shardOf } from "@berth/proto";
import { pino } from "pino";
import type { PoolSpec } from "../domain/pool.js";
import { release as releaseOf, reserve } from "../domain/pool-testkit.js";
import {
  CountingJournal,
  ForwardingJournal,
  HeldLoadsJournal,
} from "../entity/testing-journals.js";
import { FencedError } from "../journal/errors.js";
import type { Journal } from "../journal/journal.js";
import { SqliteJournal } from "../journal/sqlite-journal.js";
import { MAX_ABSENT_POOLS_PER_SHARD, ShardOwnership } from "./shard-ownership.js";

const SHARDS = 4;
const ME = "worker-0";
const OTHER = "worker-1";
const logger = pino({ level: "silent" });
const spec: PoolSpec = { capacity: 5, labels: {}, closed: false, generation: 1 };

function poolIn(shard: number, prefix: string): string {
  for (let i = 0; ; i++) {
    const id = `ns/${prefix}-${i}`;
    if (shardOf(id, SHARDS) === shard) return id;
  }
}

type Assign = { owner: string; epoch: number; state?: internal.ShardState };

function map(revision: number, assign: (shard: number) => Assign): internal.ShardMap {
  return {
    revision,
    shardCount: SHARDS,
    quorum: 1,
    members: [
      { id: ME, address: "127.0.0.1:50061" },
      { id: OTHER, address: "127.0.0.1:50062" },
    ],
    shards: Array.from({ length: SHARDS }, (_, shard) => {
      const a = assign(shard);
      return {
        shard,
        owner: a.owner,
        epoch: a.epoch,
        state: a.state ?? internal.ShardState.SHARD_STATE_ACTIVE,
      };
    }),
  };
}

async function withJournal(body: (journal: SqliteJournal) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "berth-ownership-"));
  const journal = SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
  try {
    await body(journal);
  } finally {
    await journal.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function ownership(journal: Journal, source: StaticShardMapSource): ShardOwnership {
  const o = new ShardOwnership({
    nodeId: ME,
    journal,
    source,
    logger,
    backoff: { initialMs: 1, maxMs: 5, jitter: "equal" },
  });
  o.start();
  return o;
}

const settled = (o: ShardOwnership) =>
  new Promise<void>((resolve) => {
    if (o.readiness().ready) return resolve();
    const off = o.onChange(() => {
      if (o.readiness().ready) {
        off();
        resolve();
      }
    });
  });

describe("ShardOwnership", () => {
  test("it is not ready until the shard map is known", async () => {
    await withJournal(async (journal) => {
      const source = new StaticShardMapSource();
      const o = ownership(journal, source);
      assert.deepEqual(o.readiness(), { ready: false, reason: "shard map not known yet" });
      const r = await o.execute(poolIn(0, "p"), { type: "read" });
      assert.ok(r.outcome.kind === "unavailable");
      assert.equal(r.outcome.reason, "SHARD_RECOVERING");
      source.set(map(1, () => ({ owner: ME, epoch: 1 })));
      await settled(o);
      assert.equal(o.stats().shardsOwned, SHARDS);
      await o.close();
    });
  });

  test("an acquired shard is fenced and loaded eagerly, answering SHARD_RECOVERING until then", async () => {
    await withJournal(async (sqlite) => {
      // Pools written by a previous owner at epoch 1.
      const pools = [poolIn(2, "a"), poolIn(2, "b"), poolIn(2, "c")];
      for (const p of pools) {
        await sqlite.fence(p, 2, 1);
        await sqlite.append({ pool: p, shard: 2, epoch: 1, expectedVersion: 0 }, [
          { type: "configured", spec, at: 1 },
        ]);
      }
      const journal = new HeldLoadsJournal(sqlite);
      journal.hold();
      const source = new StaticShardMapSource(
        map(1, (s) => ({ owner: s === 2 ? ME : OTHER, epoch: 2 })),
      );
      const o = ownership(journal, source);
      const ready = o.readiness();
      assert.ok(!ready.ready);
      assert.match(ready.reason, /^recovering 1 of 1 owned shards: 2$/);
      const during = await o.execute(pools[0] as string, { type: "read" });
      assert.ok(during.outcome.kind === "unavailable");
      assert.equal(during.outcome.reason, "SHARD_RECOVERING");
      assert.equal(during.outcome.retryDelayMs, 50);
      // Every pool is fenced at the new epoch before it is loaded.
      for (let i = 0; i < 100 && (await sqlite.load(pools[2] as string)).fenceEpoch < 2; i++) {
        await new Promise((r) => setImmediate(r));
      }
      for (const p of pools) assert.equal((await sqlite.load(p)).fenceEpoch, 2, p);
      journal.release();
      await settled(o);
      assert.equal(o.stats().poolsLoaded, 3, "all pools loaded before the first command");
      const after = await o.execute(pools[1] as string, { type: "read" });
      assert.ok(after.outcome.kind === "view");
      assert.equal(after.outcome.view?.capacity, 5);
      assert.equal(after.epoch, 2);
      await o.close();
    });
  });

  test("a shard recovered in one recoverShard call serves every pool fenced at its epoch, and fences on its own a pool an older owner recorded meanwhile", async () => {
    await withJournal(async (sqlite) => {
      const pools = [poolIn(1, "a"), poolIn(1, "b")];
      for (const p of pools) {
        await sqlite.append({ pool: p, shard: 1, epoch: 1, expectedVersion: 0 }, [
          { type: "configured", spec, at: 1 },
        ]);
      }
      const late = poolIn(1, "late");
      let calls = 0;
      let loads = 0;
      // Between the shard's fence and its load, the older owner (epoch 1) creates a pool.
      class RacedJournal extends ForwardingJournal {
        async recoverShard(shard: number, epoch: number) {
          calls++;
          const r = await sqlite.recoverShard(shard, epoch);
          await sqlite.append({ pool: late, shard, epoch: 1, expectedVersion: 0 }, [
            { type: "configured", spec: { ...spec, capacity: 9 }, at: 2 },
          ]);
          return { pools: new Map([...r.pools, [late, await sqlite.load(late)]]) };
        }
        override load(pool: string) {
          loads++;
          return super.load(pool);
        }
      }
      const source = new StaticShardMapSource(
        map(1, (s) => ({ owner: s === 1 ? ME : OTHER, epoch: 2 })),
      );
      const o = ownership(new RacedJournal(sqlite), source);
      await settled(o);
      assert.equal(calls, 1);
      assert.equal(loads, 1, "only the pool recorded after the shard's fence is loaded alone");
      assert.equal(o.stats().poolsLoaded, 3);
      for (const p of [...pools, late]) {
        assert.equal((await sqlite.load(p)).fenceEpoch, 2, p);
        await assert.rejects(
          sqlite.append({ pool: p, shard: 1, epoch: 1, expectedVersion: 1 }, ["stale"]),
          (e: unknown) => e instanceof FencedError,
        );
      }
      const read = await o.execute(late, { type: "read" });
      assert.ok(read.outcome.kind === "view");
      assert.equal(read.outcome.view?.capacity, 9);
      const r = await o.execute(pools[0] as string, reserve(2, "rs-1"));
      assert.equal(r.outcome.kind, "ok");
      await o.close();
    });
  });

  test("configure of a new pool on an owned shard fences it, then appends configured", async () => {
    await withJournal(async (journal) => {
      const source = new StaticShardMapSource(map(1, () => ({ owner: ME, epoch: 3 })));
      const o = ownership(journal, source);
      await settled(o);
      const pool = poolIn(1, "new");
      const r = await o.execute(pool, { type: "configure", spec, at: 1 });
      assert.equal(r.outcome.kind, "ok");
      const loaded = await journal.load(pool);
      assert.equal(loaded.fenceEpoch, 3);
      assert.equal(loaded.version, 1);
      assert.deepEqual(await journal.listPools(1), [pool]);
      await o.close();
    });
  });

  test("commands for a pool that does not exist create nothing in the journal", async () => {
    await withJournal(async (journal) => {
      const source = new StaticShardMapSource(map(1, () => ({ owner: ME, epoch: 1 })));
      const o = ownership(journal, source);
      await settled(o);
      const pool = poolIn(3, "ghost");
      const r = await o.execute(pool, reserve(1, "x", 1));
      assert.ok(r.outcome.kind === "rejected");
      assert.equal(r.outcome.rejection.code, "POOL_NOT_FOUND");
      assert.deepEqual(await journal.listPools(3), []);
      await o.close();
    });
  });

  test("a pool found absent is answered without another journal read until configured, and only at that epoch", async () => {
    await withJournal(async (sqlite) => {
      const journal = new CountingJournal(sqlite);
      const source = new StaticShardMapSource(map(1, () => ({ owner: ME, epoch: 1 })));
      const o = ownership(journal, source);
      await settled(o);
      const pool = poolIn(3, "ghost");
      const loads = journal.loads;
      for (const [i, command] of [
        reserve(1, "a", 1),
        { type: "read" as const },
        reserve(1, "b", 2),
      ].entries()) {
        const r = await o.execute(pool, command);
        assert.ok(
          r.outcome.kind === (command.type === "read" ? "view" : "rejected"),
          `command ${i}`,
        );
      }
      const retired = await o.execute(pool, { type: "retire", at: 3 });
      assert.equal(retired.outcome.kind, "ok");
      assert.equal(journal.loads - loads, 1, "one journal read for four commands");
      assert.deepEqual(
        await sqlite.listPools(3),
        [],
        "nothing written for a pool never configured",
      );

      // Configure creates it; from then on it is served, not answered absent.
      assert.equal((await o.execute(pool, { type: "configure", spec, at: 4 })).outcome.kind, "ok");
      const reserved = await o.execute(pool, reserve(1, "c", 5));
      assert.ok(reserved.outcome.kind === "ok", JSON.stringify(reserved.outcome));

      // A new epoch of the shard starts with nothing remembered: another pool is read again.
      const other = poolIn(3, "phantom");
      assert.equal((await o.execute(other, reserve(1, "d", 6))).outcome.kind, "rejected");
      source.set(map(2, (s) => ({ owner: ME, epoch: s === 3 ? 2 : 1 })));
      await settled(o);
      const before = journal.loads;
      assert.equal((await o.execute(other, reserve(1, "e", 7))).outcome.kind, "rejected");
      assert.equal(journal.loads - before, 1, "read again at the new epoch");
      await o.close();
    });
  });

  test("what it remembers as absent is bounded per shard, oldest forgotten first", async () => {
    await withJournal(async (sqlite) => {
      const journal = new CountingJournal(sqlite);
      const source = new StaticShardMapSource(map(1, () => ({ owner: ME, epoch: 1 })));
      const o = ownership(journal, source);
      await settled(o);
      const ghosts: string[] = [];
      for (let i = 0; ghosts.length <= MAX_ABSENT_POOLS_PER_SHARD; i++) {
        const id = `ns/bounded-${i}`;
        if (shardOf(id, SHARDS) === 0) ghosts.push(id);
      }
      for (const g of ghosts) await o.execute(g, { type: "read" });
      const loads = journal.loads;
      await o.execute(ghosts.at(-1) as string, { type: "read" });
      assert.equal(journal.loads, loads, "the newest is remembered");
      await o.execute(ghosts[0] as string, { type: "read" });
      assert.equal(journal.loads, loads + 1, "the oldest was forgotten and is read again");
      await o.close();
    });
  });

  test("a command from a caller whose map has a newer epoch of the shard waits for this worker's map", async () => {
    await withJournal(async (journal) => {
      const source = new StaticShardMapSource(map(1, () => ({ owner: ME, epoch: 1 })));
      const o = ownership(journal, source);
      await settled(o);
      const pool = poolIn(2, "ahead");
      assert.equal((await o.execute(pool, { type: "configure", spec, at: 1 })).outcome.kind, "ok");

      // The map never catches up: NOT_OWNER that says why, and nothing written at epoch 1.
      const version = (await journal.load(pool)).version;
      const behind = await o.execute(pool, reserve(1, "r-0", 2), undefined, 4);
      assert.ok(behind.outcome.kind === "not_owner", JSON.stringify(behind.outcome));
      assert.match(behind.outcome.message, /shard map is behind the caller's.*epoch 1 here, 4/);
      assert.equal((await journal.load(pool)).version, version);

      // The map catches up while the command waits: it is served at the new epoch.
      const pending = o.execute(pool, reserve(1, "r-1", 3), undefined, 4);
      source.set(map(2, (s) => ({ owner: ME, epoch: s === 2 ? 4 : 1 })));
      let served = await pending;
      // It may land while the shard recovers at epoch 4; the caller retries then.
      while (served.outcome.kind === "unavailable") {
        await settled(o);
        served = await o.execute(pool, reserve(1, "r-1", 3), undefined, 4);
      }
      assert.ok(served.outcome.kind === "ok", JSON.stringify(served.outcome));
      assert.equal(served.epoch, 4);
      // A caller with an older map (or none: epoch 0) is served by the owner as it is.
      assert.equal((await o.execute(pool, { type: "read" }, undefined, 1)).outcome.kind, "view");
      assert.equal((await o.execute(pool, { type: "read" }, undefined, 0)).outcome.kind, "view");
      await o.close();
    });
  });

  test("a draining shard stops taking commands; a lost one names its new owner", async () => {
    await withJournal(async (journal) => {
      const source = new StaticShardMapSource(map(1, () => ({ owner: ME, epoch: 1 })));
      const o = ownership(journal, source);
      await settled(o);
      const pool = poolIn(0, "drain");
      assert.equal((await o.execute(pool, { type: "configure", spec, at: 1 })).outcome.kind, "ok");

      source.set(
        map(2, (s) => ({
          owner: ME,
          epoch: 1,
          state:
            s === 0
              ? internal.ShardState.SHARD_STATE_DRAINING
              : internal.ShardState.SHARD_STATE_ACTIVE,
        })),
      );
      const draining = await o.execute(pool, { type: "read" });
      assert.ok(draining.outcome.kind === "not_owner");
      assert.equal(draining.outcome.owner, undefined);
      assert.equal(draining.outcome.retryDelayMs, 50);
      assert.match(draining.outcome.message, /handed off/);

      source.set(map(3, (s) => ({ owner: s === 0 ? OTHER : ME, epoch: s === 0 ? 2 : 1 })));
      const moved = await o.execute(pool, { type: "read" });
      assert.ok(moved.outcome.kind === "not_owner");
      assert.equal(moved.outcome.owner, OTHER);
      assert.equal(moved.outcome.ownerAddress, "127.0.0.1:50062");
      assert.equal(moved.outcome.epoch, 2);
      assert.equal(o.stats().shardsOwned, SHARDS - 1);
      await o.close();
    });
  });

  test("a shard that comes back with a higher epoch is recovered again at that epoch", async () => {
    await withJournal(async (journal) => {
      const source = new StaticShardMapSource(map(1, () => ({ owner: ME, epoch: 1 })));
      const o = ownership(journal, source);
      await settled(o);
      const pool = poolIn(2, "back");
      await o.execute(pool, { type: "configure", spec, at: 1 });
      source.set(map(2, (s) => ({ owner: ME, epoch: s === 2 ? 5 : 1 })));
      await settled(o);
      assert.equal((await journal.load(pool)).fenceEpoch, 5);
      const r = await o.execute(pool, reserve(2, "r", 2));
      assert.equal(r.outcome.kind, "ok");
      assert.equal(r.epoch, 5);
      await o.close();
    });
  });
});

describe("ShardOwnership: a former owner whose ShardMap lags", () => {
  test("answers NOT_OWNER — never a stale rejection or a stale GetPool — once a newer owner took the shard", async () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-ownership-"));
    // Two workers, two connections to one SQLite file, like a local cluster.
    const journalA = SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
    const journalB = SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
    const worker = (nodeId: string, journal: Journal, source: StaticShardMapSource) => {
      const o = new ShardOwnership({
        nodeId,
        journal,
        source,
        logger,
        backoff: { initialMs: 1, maxMs: 5, jitter: "equal" },
      });
      o.start();
      return o;
    };
    const sourceA = new StaticShardMapSource(map(1, () => ({ owner: ME, epoch: 1 })));
    const sourceB = new StaticShardMapSource(map(1, () => ({ owner: ME, epoch: 1 })));
    const a = worker(ME, journalA, sourceA);
    const b = worker(OTHER, journalB, sourceB);
    try {
      await settled(a);
      const pool = poolIn(1, "stale");
      const one: PoolSpec = { capacity: 1, labels: {}, closed: false, generation: 1 };
      assert.equal(
        (await a.execute(pool, { type: "configure", spec: one, at: 1 })).outcome.kind,
        "ok",
      );
      const r0 = await a.execute(pool, reserve(1, "r-0", 2));
      assert.ok(r0.outcome.kind === "ok" && r0.outcome.reply.type === "reserved");
      const r0Seq = r0.outcome.reply.reservationSeq;

      // Hand-off of shard 1 to B at epoch 2; A's map lags behind.
      sourceB.set(map(2, (s) => (s === 1 ? { owner: OTHER, epoch: 2 } : { owner: ME, epoch: 1 })));
      await settled(b);
      const released = await b.execute(pool, releaseOf(r0Seq, "r-0", 3));
      assert.equal(released.outcome.kind, "ok");
      const r1 = await b.execute(pool, reserve(1, "r-1", 4));
      assert.ok(r1.outcome.kind === "ok" && r1.outcome.reply.type === "reserved");
      const r1Seq = r1.outcome.reply.reservationSeq;

      // The gateway's retry of r-1 reaches A (its attempt at B timed out, say).
      const retry = await a.execute(pool, reserve(1, "r-1", 5));
      assert.equal(retry.outcome.kind, "not_owner", JSON.stringify(retry.outcome));
      // GetPool (linearizable) through A must not show A's stale counters.
      const read = await a.execute(pool, { type: "read" });
      assert.equal(read.outcome.kind, "not_owner", JSON.stringify(read.outcome));
      // Nor may A tell a release of B's reservation that it does not exist.
      const release = await a.execute(pool, releaseOf(r1Seq, "r-1", 6));
      assert.equal(release.outcome.kind, "not_owner", JSON.stringify(release.outcome));
      const again = await a.execute(pool, reserve(1, "r-2", 7));
      assert.equal(again.outcome.kind, "not_owner", JSON.stringify(again.outcome));

      // The owner's view is the truth: r-1 holds the one unit.
      const truth = await b.execute(pool, { type: "read" });
      assert.ok(truth.outcome.kind === "view");
      assert.equal(truth.outcome.view?.reserved, 1);
      assert.equal((await journalA.load(pool)).version, 4, "A wrote nothing");
    } finally {
      await a.close();
      await b.close();
      await journalA.close();
      await journalB.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
