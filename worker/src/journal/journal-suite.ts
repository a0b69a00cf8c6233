import assert from "node:assert/strict";
import { randomInt, randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import { FencedError, JournalUnavailableError, VersionConflictError } from "./errors.js";
import type { Journal } from "./journal.js";

/** What the suite's `open` returns: a journal on a store, and how to get more of them. */
export interface JournalFixture {
  /** A journal instance on the store. */
  readonly journal: Journal;
  /** A new, independent instance on the same store (a second writer, or a restarted process). */
  readonly reopen: () => Promise<Journal>;
  /** Removes what `open` created. Called after every journal the test used is closed. */
  readonly cleanup: () => Promise<void>;
}

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Registers (with `node:test`) the behaviour every Journal implementation must have.
 * Call it at the top level of an integration test file:
 *
 * ```ts
 * journalConformanceSuite("SqliteJournal", async () => { … return { journal, reopen, cleanup }; });
 * ```
 *
 * `open` is called once per test. It may return a fresh store each time or the same
 * one: the suite uses pool ids and shard numbers unique to the test, so tests never
 * see each other's data. The suite closes every journal it obtained (close must be
 * idempotent) before it calls `cleanup`.
 *
 * Beyond the Journal interface's doc comments, the suite pins down: argument checks
 * (the messages of `validation.ts`), that `append` never raises the fence, that an
 * empty append writes nothing, that only the highest-seq snapshot is kept, that
 * `listPools` includes fenced-only pools, and that a closed journal rejects calls with
 * JournalUnavailableError (outcomeUnknown false).
 */
export function journalConformanceSuite(name: string, open: () => Promise<JournalFixture>): void {
  const runId = randomUUID().slice(0, 8);
  let poolCounter = 0;
  // Shards stay below 2^31 so that 32-bit stores (Cassandra `int`) can hold them.
  let shardCounter = randomInt(1_000, 1_000_000) * 1_000;
  const newPool = (label: string): string => `suite-${runId}/${label}-${++poolCounter}`;
  const newShard = (): number => ++shardCounter;

  /** Runs a test body against a fresh fixture; closes every journal, then cleans up. */
  async function withStore(
    body: (j: Journal, reopen: () => Promise<Journal>) => Promise<void>,
  ): Promise<void> {
    const fixture = await open();
    const journals: Journal[] = [fixture.journal];
    const reopen = async (): Promise<Journal> => {
      const j = await fixture.reopen();
      journals.push(j);
      return j;
    };
    try {
      await body(fixture.journal, reopen);
    } finally {
      for (const j of journals) await j.close();
      await fixture.cleanup();
    }
  }

  describe(`${name} (journal conformance)`, () => {
    test("a pool that was never written loads empty at version 0 with fence epoch 0", async () => {
      await withStore(async (j) => {
        const loaded = await j.load(newPool("never"));
        assert.deepEqual(loaded, { snapshot: undefined, events: [], version: 0, fenceEpoch: 0 });
      });
    });

    test("appended events load back in order with seqs 1, 2, 3, …", async () => {
      await withStore(async (j) => {
        const pool = newPool("order");
        const shard = newShard();
        const v1 = await j.append({ pool, shard, epoch: 0, expectedVersion: 0 }, ["a", "b", "c"]);
        assert.equal(v1, 3);
        const v2 = await j.append({ pool, shard, epoch: 0, expectedVersion: 3 }, ["d", "e"]);
        assert.equal(v2, 5);
        const loaded = await j.load(pool);
        assert.equal(loaded.version, 5);
        assert.equal(loaded.snapshot, undefined);
        assert.deepEqual(loaded.events, [
          { seq: 1, event: "a" },
          { seq: 2, event: "b" },
          { seq: 3, event: "c" },
          { seq: 4, event: "d" },
          { seq: 5, event: "e" },
        ]);
      });
    });

    test("seqs start at 1 and have no gaps across appends of many sizes", async () => {
      await withStore(async (j) => {
        const pool = newPool("gapless");
        const shard = newShard();
        let version = 0;
        let n = 0;
        for (const size of [1, 2, 3, 5, 8, 13, 1, 40]) {
          const batch = Array.from({ length: size }, () => ({ n: n++ }));
          const next = await j.append({ pool, shard, epoch: 0, expectedVersion: version }, batch);
          assert.equal(next, version + size);
          version = next;
        }
        const loaded = await j.load(pool);
        assert.equal(loaded.version, n);
        assert.deepEqual(
          loaded.events.map((e) => e.seq),
          Array.from({ length: n }, (_, i) => i + 1),
        );
        assert.deepEqual(
          loaded.events.map((e) => e.event),
          Array.from({ length: n }, (_, i) => ({ n: i })),
        );
      });
    });

    test("an append at the wrong expected version fails with VersionConflictError and writes nothing", async () => {
      await withStore(async (j) => {
        const pool = newPool("conflict");
        const shard = newShard();
        await j.append({ pool, shard, epoch: 0, expectedVersion: 0 }, [1, 2]);
        for (const expectedVersion of [0, 1, 3, 100]) {
          await rejectsWith(
            j.append({ pool, shard, epoch: 0, expectedVersion }, ["x", "y"]),
            VersionConflictError,
            `journal conflict on pool ${pool}: expected version ${expectedVersion}, found 2`,
            (e) => {
              assert.equal(e.pool, pool);
              assert.equal(e.expectedVersion, expectedVersion);
              assert.equal(e.actualVersion, 2);
            },
          );
        }
        const loaded = await j.load(pool);
        assert.equal(loaded.version, 2);
        assert.deepEqual(
          loaded.events.map((e) => e.event),
          [1, 2],
        );
      });
    });

    test("an empty append checks version and fence, returns the expected version and writes nothing", async () => {
      await withStore(async (j) => {
        const pool = newPool("empty");
        const shard = newShard();
        assert.equal(await j.append({ pool, shard, epoch: 0, expectedVersion: 0 }, []), 0);
        assert.deepEqual(await j.listPools(shard), []);
        await rejectsWith(
          j.append({ pool, shard, epoch: 0, expectedVersion: 4 }, []),
          VersionConflictError,
          `journal conflict on pool ${pool}: expected version 4, found 0`,
        );
        await j.append({ pool, shard, epoch: 0, expectedVersion: 0 }, ["a"]);
        assert.equal(await j.append({ pool, shard, epoch: 0, expectedVersion: 1 }, []), 1);
        await j.fence(pool, shard, 3);
        await rejectsWith(
          j.append({ pool, shard, epoch: 2, expectedVersion: 1 }, []),
          FencedError,
          `pool ${pool} is fenced at epoch 3; writer epoch 2 is stale`,
        );
        const loaded = await j.load(pool);
        assert.equal(loaded.version, 1);
        assert.equal(loaded.events.length, 1);
      });
    });

    test("two writers racing on one pool write every seq exactly once; losers conflict, reload and continue", async () => {
      await withStore(async (a, reopen) => {
        const b = await reopen();
        const pool = newPool("race");
        const shard = newShard();
        const loopsPerWriter = 4;
        const batchesPerLoop = 10;
        let conflicts = 0;
        const committed: { version: number; batch: unknown[] }[] = [];

        const loop = async (j: Journal, writer: string, l: number): Promise<void> => {
          // Every loop starts from the same stale view, so at most one first attempt wins.
          let expected = 0;
          for (let i = 0; i < batchesPerLoop; i++) {
            const size = ((l + i) % 3) + 1;
            const batch = Array.from({ length: size }, (_, k) => ({ writer, l, i, k }));
            for (;;) {
              try {
                expected = await j.append(
                  { pool, shard, epoch: 1, expectedVersion: expected },
                  batch,
                );
                committed.push({ version: expected, batch });
                break;
              } catch (e: unknown) {
                if (!(e instanceof VersionConflictError)) throw e;
                assert.equal(e.expectedVersion, expected);
                assert.notEqual(e.actualVersion, expected);
                conflicts++;
                expected = (await j.load(pool)).version;
              }
            }
          }
        };
        const loops: Promise<void>[] = [];
        for (let l = 0; l < loopsPerWriter; l++) {
          loops.push(loop(a, "a", l), loop(b, "b", l));
        }
        await Promise.all(loops);

        const total = committed.reduce((n, c) => n + c.batch.length, 0);
        assert.ok(
          conflicts >= 2 * loopsPerWriter - 1,
          `expected at least ${2 * loopsPerWriter - 1} conflicts, saw ${conflicts}`,
        );
        for (const j of [a, b]) {
          const loaded = await j.load(pool);
          assert.equal(loaded.version, total);
          assert.deepEqual(
            loaded.events.map((e) => e.seq),
            Array.from({ length: total }, (_, i) => i + 1),
          );
          const keys = loaded.events.map((e) => JSON.stringify(e.event));
          assert.equal(new Set(keys).size, total, "an event was written twice");
          // Each committed batch sits, contiguous and whole, right where its append said.
          for (const c of committed) {
            const at = loaded.events.slice(c.version - c.batch.length, c.version);
            assert.deepEqual(
              at.map((e) => e.event),
              c.batch,
            );
          }
        }
        assert.equal(committed.length, 2 * loopsPerWriter * batchesPerLoop);
      });
    });

    test("after fence(pool, shard, 2) epoch 1 is fenced out, epoch 2 appends, and the fence cannot go back", async () => {
      await withStore(async (j) => {
        const pool = newPool("fence");
        const shard = newShard();
        await j.append({ pool, shard, epoch: 1, expectedVersion: 0 }, ["before"]);
        await j.fence(pool, shard, 2);
        assert.equal((await j.load(pool)).fenceEpoch, 2);

        await rejectsWith(
          j.append({ pool, shard, epoch: 1, expectedVersion: 1 }, ["stale-1", "stale-2"]),
          FencedError,
          `pool ${pool} is fenced at epoch 2; writer epoch 1 is stale`,
          (e) => {
            assert.equal(e.pool, pool);
            assert.equal(e.epoch, 1);
            assert.equal(e.fenceEpoch, 2);
          },
        );
        // The fence is checked before the version.
        await rejectsWith(
          j.append({ pool, shard, epoch: 1, expectedVersion: 7 }, ["stale"]),
          FencedError,
          `pool ${pool} is fenced at epoch 2; writer epoch 1 is stale`,
        );
        let loaded = await j.load(pool);
        assert.equal(loaded.version, 1);
        assert.deepEqual(
          loaded.events.map((e) => e.event),
          ["before"],
        );

        assert.equal(await j.append({ pool, shard, epoch: 2, expectedVersion: 1 }, ["owner"]), 2);
        // A higher epoch may append too, but appending does not raise the fence.
        assert.equal(await j.append({ pool, shard, epoch: 5, expectedVersion: 2 }, ["newer"]), 3);
        assert.equal((await j.load(pool)).fenceEpoch, 2);

        await rejectsWith(
          j.fence(pool, shard, 1),
          FencedError,
          `pool ${pool} is fenced at epoch 2; writer epoch 1 is stale`,
          (e) => {
            assert.equal(e.epoch, 1);
            assert.equal(e.fenceEpoch, 2);
          },
        );
        await j.fence(pool, shard, 2); // Re-fencing at the same epoch is allowed.
        await j.fence(pool, shard, 3);
        await rejectsWith(
          j.append({ pool, shard, epoch: 2, expectedVersion: 3 }, ["old owner"]),
          FencedError,
          `pool ${pool} is fenced at epoch 3; writer epoch 2 is stale`,
        );
        loaded = await j.load(pool);
        assert.equal(loaded.version, 3);
        assert.equal(loaded.fenceEpoch, 3);
        assert.deepEqual(
          loaded.events.map((e) => e.event),
          ["before", "owner", "newer"],
        );
      });
    });

    test("recoverShard fences every pool of the shard (never lowering one), loads each as load does, and shuts out older writers", async (t) => {
      await withStore(async (j, reopen) => {
        if (j.recoverShard === undefined) {
          t.skip(`${name} has no recoverShard (recovery fences and loads pool by pool)`);
          return;
        }
        const shard = newShard();
        const other = newShard();
        const [a, b, c] = [newPool("rs-a"), newPool("rs-b"), newPool("rs-c")];
        const elsewhere = newPool("rs-elsewhere");
        await j.fence(a, shard, 1);
        await j.append({ pool: a, shard, epoch: 1, expectedVersion: 0 }, [1, 2, 3, 4]);
        await j.saveSnapshot(a, { seq: 2, state: { sum: 3 } });
        await j.append({ pool: b, shard, epoch: 0, expectedVersion: 0 }, [{ only: "one" }]);
        await j.fence(c, shard, 5); // fenced only, and higher than the recovery's epoch
        await j.fence(elsewhere, other, 1);

        const recovered = await j.recoverShard(shard, 3);
        assert.deepEqual([...recovered.pools.keys()], [a, b, c].sort());
        for (const pool of [a, b, c])
          assert.deepEqual(recovered.pools.get(pool), await j.load(pool));
        assert.deepEqual(recovered.pools.get(a), {
          snapshot: { seq: 2, state: { sum: 3 } },
          events: [
            { seq: 3, event: 3 },
            { seq: 4, event: 4 },
          ],
          version: 4,
          fenceEpoch: 3,
        });
        assert.equal(recovered.pools.get(b)?.fenceEpoch, 3);
        assert.equal(recovered.pools.get(c)?.fenceEpoch, 5);
        assert.equal((await j.load(elsewhere)).fenceEpoch, 1);

        // Every instance now refuses the older owner and takes the recovering one.
        const k = await reopen();
        await rejectsWith(
          k.append({ pool: a, shard, epoch: 2, expectedVersion: 4 }, ["stale"]),
          FencedError,
          `pool ${a} is fenced at epoch 3; writer epoch 2 is stale`,
        );
        await rejectsWith(
          k.fence(b, shard, 2),
          FencedError,
          `pool ${b} is fenced at epoch 3; writer epoch 2 is stale`,
        );
        assert.equal(await k.append({ pool: a, shard, epoch: 3, expectedVersion: 4 }, [5]), 5);
        // A recovery at a lower epoch lowers nothing.
        assert.equal((await j.recoverShard(shard, 2)).pools.get(a)?.fenceEpoch, 3);
        assert.equal((await j.recoverShard(newShard(), 1)).pools.size, 0);
      });
    });

    test("a fence seen by one journal instance holds for every other instance on the store", async () => {
      await withStore(async (a, reopen) => {
        const b = await reopen();
        const pool = newPool("fence-shared");
        const shard = newShard();
        await a.fence(pool, shard, 4);
        const loaded = await b.load(pool);
        assert.deepEqual(loaded, { snapshot: undefined, events: [], version: 0, fenceEpoch: 4 });
        await rejectsWith(
          b.append({ pool, shard, epoch: 3, expectedVersion: 0 }, ["x"]),
          FencedError,
          `pool ${pool} is fenced at epoch 4; writer epoch 3 is stale`,
        );
        await rejectsWith(
          b.fence(pool, shard, 3),
          FencedError,
          `pool ${pool} is fenced at epoch 4; writer epoch 3 is stale`,
        );
        assert.equal(await b.append({ pool, shard, epoch: 4, expectedVersion: 0 }, ["x"]), 1);
      });
    });

    test("load returns the latest snapshot and only the events after it", async () => {
      await withStore(async (j) => {
        const pool = newPool("snapshot");
        const shard = newShard();
        await j.append({ pool, shard, epoch: 0, expectedVersion: 0 }, [1, 2, 3, 4, 5]);
        await j.saveSnapshot(pool, { seq: 3, state: { sum: 6 } });
        await j.append({ pool, shard, epoch: 0, expectedVersion: 5 }, [6, 7]);
        assert.deepEqual(await j.load(pool), {
          snapshot: { seq: 3, state: { sum: 6 } },
          events: [
            { seq: 4, event: 4 },
            { seq: 5, event: 5 },
            { seq: 6, event: 6 },
            { seq: 7, event: 7 },
          ],
          version: 7,
          fenceEpoch: 0,
        });
        await j.saveSnapshot(pool, { seq: 7, state: { sum: 28 } });
        assert.deepEqual(await j.load(pool), {
          snapshot: { seq: 7, state: { sum: 28 } },
          events: [],
          version: 7,
          fenceEpoch: 0,
        });
        // An older snapshot arriving late does not replace the newer one.
        await j.saveSnapshot(pool, { seq: 5, state: { sum: 15 } });
        assert.deepEqual((await j.load(pool)).snapshot, { seq: 7, state: { sum: 28 } });
      });
    });

    test("a snapshot beyond the pool's version is rejected with RangeError", async () => {
      await withStore(async (j) => {
        const pool = newPool("snapshot-ahead");
        const shard = newShard();
        await rejectsWith(
          j.saveSnapshot(pool, { seq: 1, state: {} }),
          RangeError,
          `snapshot seq 1 of pool ${pool} is beyond the pool's version 0`,
        );
        await j.append({ pool, shard, epoch: 0, expectedVersion: 0 }, ["a", "b"]);
        await rejectsWith(
          j.saveSnapshot(pool, { seq: 3, state: {} }),
          RangeError,
          `snapshot seq 3 of pool ${pool} is beyond the pool's version 2`,
        );
        assert.equal((await j.load(pool)).snapshot, undefined);
      });
    });

    test("a new instance opened after a snapshot recovers the snapshot, later events, version and fence", async () => {
      await withStore(async (j, reopen) => {
        const pool = newPool("recover");
        const shard = newShard();
        await j.fence(pool, shard, 7);
        await j.append({ pool, shard, epoch: 7, expectedVersion: 0 }, ["a", "b", "c"]);
        await j.saveSnapshot(pool, { seq: 2, state: { seen: ["a", "b"] } });
        await j.append({ pool, shard, epoch: 7, expectedVersion: 3 }, ["d"]);
        const before = await j.load(pool);
        await j.close();

        const k = await reopen();
        const after = await k.load(pool);
        assert.deepEqual(after, before);
        assert.deepEqual(after, {
          snapshot: { seq: 2, state: { seen: ["a", "b"] } },
          events: [
            { seq: 3, event: "c" },
            { seq: 4, event: "d" },
          ],
          version: 4,
          fenceEpoch: 7,
        });
        assert.deepEqual(await k.listPools(shard), [pool]);
        assert.equal(await k.append({ pool, shard, epoch: 7, expectedVersion: 4 }, ["e"]), 5);
      });
    });

    test("listPools lists each shard's pools once, sorted, including pools that were only fenced", async () => {
      await withStore(async (j) => {
        const shardA = newShard();
        const shardB = newShard();
        const empty = newShard();
        const prefix = `suite-${runId}/list-${++poolCounter}`;
        const inA = [`${prefix}-c`, `${prefix}-a`, `${prefix}-B`, `${prefix}-b0`, `${prefix}-b`];
        for (const pool of inA) {
          await j.append({ pool, shard: shardA, epoch: 0, expectedVersion: 0 }, ["x"]);
          await j.append({ pool, shard: shardA, epoch: 0, expectedVersion: 1 }, ["y"]);
          await j.fence(pool, shardA, 1);
        }
        const fencedOnly = `${prefix}-fenced`;
        await j.fence(fencedOnly, shardB, 1);
        assert.deepEqual(await j.listPools(shardA), [...inA].sort());
        assert.deepEqual(await j.listPools(shardB), [fencedOnly]);
        assert.deepEqual(await j.listPools(empty), []);
      });
    });

    test("a multi-event append is all or nothing", async () => {
      await withStore(async (j) => {
        const pool = newPool("atomic");
        const shard = newShard();
        const batch = Array.from({ length: 100 }, (_, i) => ({ i }));
        assert.equal(await j.append({ pool, shard, epoch: 0, expectedVersion: 0 }, batch), 100);
        let loaded = await j.load(pool);
        assert.equal(loaded.version, 100);
        assert.deepEqual(
          loaded.events.map((e) => e.event),
          batch,
        );

        // Failed appends leave no part of their batch behind.
        await assert.rejects(
          j.append({ pool, shard, epoch: 0, expectedVersion: 99 }, batch),
          VersionConflictError,
        );
        await assert.rejects(
          j.append({ pool, shard, epoch: 0, expectedVersion: 100 }, [1, 2, undefined, 4]),
          TypeError,
        );
        await j.fence(pool, shard, 1);
        await assert.rejects(
          j.append({ pool, shard, epoch: 0, expectedVersion: 100 }, [1, 2, 3]),
          FencedError,
        );
        loaded = await j.load(pool);
        assert.equal(loaded.version, 100);
        assert.equal(loaded.events.length, 100);
      });
    });

    test("JSON payloads round-trip: unicode, nested objects, arrays and scalars", async () => {
      await withStore(async (j, reopen) => {
        const pool = newPool("json");
        const shard = newShard();
        let deep: unknown = { leaf: "bottom" };
        for (let i = 0; i < 60; i++) deep = { level: i, list: [i, [deep]] };
        const events: unknown[] = [
          {
            latin: "héllo wörld — ½ ≠ ∞",
            cjk: "容量预留",
            rtl: "שלום עולם",
            emoji: "🚀🧑🏽‍💻👍🏿",
            astral: "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
            combining: "e\u0301",
            loneSurrogate: "\ud800x",
            controls: '\u0000\u0001\u001f\n\r\t"\\/',
            quotes: `'"\``,
            empty: "",
          },
          { nested: { a: [1, [2, [3, { b: null, c: [true, false] }]]], "key with spaces": {} } },
          {
            numbers: [
              0,
              -1,
              1.5,
              -2.25e-7,
              1e300,
              Number.MAX_SAFE_INTEGER,
              -Number.MAX_SAFE_INTEGER,
            ],
          },
          deep,
          "a bare string",
          42,
          null,
          true,
          [],
          {},
        ];
        await j.append({ pool, shard, epoch: 0, expectedVersion: 0 }, events);
        const state = { pools: { "ns/ünïcödé": { units: 3, labels: { "zone/ü": "😀" } } }, deep };
        await j.saveSnapshot(pool, { seq: 3, state });
        const k = await reopen();
        for (const loaded of [await j.load(pool), await k.load(pool)]) {
          assert.deepEqual(loaded.snapshot, { seq: 3, state });
          assert.deepEqual(
            loaded.events.map((e) => e.event),
            events.slice(3),
          );
        }
      });
    });

    test("invalid arguments are rejected with precise TypeError or RangeError and write nothing", async () => {
      await withStore(async (j) => {
        const pool = newPool("args");
        const shard = newShard();
        const ok = { pool, shard, epoch: 0, expectedVersion: 0 };
        const bad = (o: object) => o as unknown as typeof ok;
        const cases: [() => Promise<unknown>, ErrorClass, string | RegExp][] = [
          [() => j.load(""), TypeError, 'pool must be a non-empty string, got ""'],
          [
            () => j.load(42 as unknown as string),
            TypeError,
            "pool must be a non-empty string, got 42",
          ],
          [
            () => j.append(bad({ ...ok, pool: undefined }), ["x"]),
            TypeError,
            "pool must be a non-empty string, got undefined",
          ],
          [
            () => j.append({ ...ok, shard: -1 }, ["x"]),
            RangeError,
            "shard must be a non-negative safe integer, got -1",
          ],
          [
            () => j.append({ ...ok, epoch: 1.5 }, ["x"]),
            RangeError,
            "epoch must be a non-negative safe integer, got 1.5",
          ],
          [
            () => j.append({ ...ok, expectedVersion: Number.NaN }, ["x"]),
            RangeError,
            "expectedVersion must be a non-negative safe integer, got NaN",
          ],
          [
            () => j.append(bad({ ...ok, expectedVersion: "3" }), ["x"]),
            RangeError,
            'expectedVersion must be a non-negative safe integer, got "3"',
          ],
          [
            () => j.append({ ...ok, expectedVersion: 2 ** 53 }, ["x"]),
            RangeError,
            "expectedVersion must be a non-negative safe integer, got 9007199254740992",
          ],
          [
            () => j.append(ok, { length: 1 } as unknown as unknown[]),
            TypeError,
            "events must be an array, got an object",
          ],
          [
            () => j.append(ok, ["x", undefined]),
            TypeError,
            "event at index 1 is not JSON-serialisable: undefined",
          ],
          [
            () => j.append(ok, [() => 1]),
            TypeError,
            "event at index 0 is not JSON-serialisable: a function",
          ],
          [
            () => j.append(ok, [{ n: 10n }]),
            TypeError,
            /^event at index 0 is not JSON-serialisable: .+/,
          ],
          [
            () => j.append(ok, [cyclic()]),
            TypeError,
            /^event at index 0 is not JSON-serialisable: .+/,
          ],
          [
            () => j.fence(pool, -1, 1),
            RangeError,
            "shard must be a non-negative safe integer, got -1",
          ],
          [
            () => j.fence(pool, shard, -2),
            RangeError,
            "epoch must be a non-negative safe integer, got -2",
          ],
          [() => j.fence("", shard, 1), TypeError, 'pool must be a non-empty string, got ""'],
          [
            () => j.listPools(1.5),
            RangeError,
            "shard must be a non-negative safe integer, got 1.5",
          ],
          [
            () => j.saveSnapshot(pool, { seq: 0, state: {} }),
            RangeError,
            "snapshot seq must be a positive safe integer, got 0",
          ],
          [
            () => j.saveSnapshot(pool, { seq: 1, state: undefined }),
            TypeError,
            "snapshot state is not JSON-serialisable: undefined",
          ],
        ];
        for (const [call, cls, message] of cases) {
          await rejectsWith(call(), cls, message);
        }
        assert.deepEqual(await j.load(pool), {
          snapshot: undefined,
          events: [],
          version: 0,
          fenceEpoch: 0,
        });
        assert.deepEqual(await j.listPools(shard), []);
      });
    });

    test("a closed journal rejects calls with JournalUnavailableError, and closing twice is harmless", async () => {
      await withStore(async (j) => {
        const pool = newPool("closed");
        const shard = newShard();
        await j.append({ pool, shard, epoch: 0, expectedVersion: 0 }, ["a"]);
        await j.close();
        await j.close();
        const calls: (() => Promise<unknown>)[] = [
          () => j.load(pool),
          () => j.append({ pool, shard, epoch: 0, expectedVersion: 1 }, ["b"]),
          () => j.fence(pool, shard, 1),
          () => j.saveSnapshot(pool, { seq: 1, state: {} }),
          () => j.listPools(shard),
        ];
        for (const call of calls) {
          await rejectsWith(call(), JournalUnavailableError, /closed/, (e) => {
            assert.equal(e.outcomeUnknown, false);
          });
        }
      });
    });
  });
}

/**
 * Asserts that `promise` rejects with an instance of `cls` whose message is exactly
 * `message` (or matches it), then runs `more` on the error.
 */
async function rejectsWith<C extends ErrorClass>(
  promise: Promise<unknown>,
  cls: C,
  message: string | RegExp,
  more?: (e: InstanceType<C>) => void,
): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${describeError(e)}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    more?.(e as InstanceType<C>);
    return true;
  });
}

function describeError(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function cyclic(): unknown {
  const o: Record<string, unknown> = {};
  o.self = o;
  return o;
}
