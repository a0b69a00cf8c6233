// Integration tests of CassandraJournal against a real Cassandra node: the shared
// conformance suite plus what only Cassandra has (buckets, fencing across buckets,
// sessions racing, migrations, connection failures, unknown outcomes).
//
// The node: BERTH_CASSANDRA=host:port uses a running node (npm test starts one per run
// for the files with the `cassandra` token, or start one with
// `node --import tsx testing/src/cassandra/cli.ts start`). Otherwise this file starts one
// node for all its tests through @berth/testing (a devDependency: the harness is a test
// tool, never part of the worker). Without `java` on PATH the tests are skipped with the
// reason printed.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import { javaAvailable, startCassandra } from "@berth/testing/cassandra";
import cassandra from "cassandra-driver";
import { CassandraJournal, type CassandraJournalOptions } from "./cassandra-journal.js";
import { CassandraSchemaTooNewError } from "./cassandra-schema.js";
import { FencedError, JournalUnavailableError, VersionConflictError } from "./errors.js";
import type { Journal, LoadedPool } from "./journal.js";
import { journalConformanceSuite } from "./journal-suite.js";

const given = process.env.BERTH_CASSANDRA;
let skip: string | false = false;
if (!given && !javaAvailable()) {
  skip =
    "java is not on PATH (Java 17 is needed to start Cassandra; or set BERTH_CASSANDRA=host:port)";
  console.log(`# skipping the Cassandra journal tests: ${skip}`);
}

let node: Promise<{ contactPoint: string; stop(): Promise<void> }> | undefined;
/** The node's contact point, starting the shared node on first use. */
async function contactPoint(): Promise<string> {
  if (given) return given;
  node ??= startCassandra({
    log: (line) => process.stderr.write(`[cassandra] ${line}\n`),
  });
  return (await node).contactPoint;
}

const runId = randomUUID().replaceAll("-", "").slice(0, 8);
let keyspaceCounter = 0;
const keyspaces: string[] = [];
function newKeyspace(label: string): string {
  const ks = `berth_test_${runId}_${label}_${++keyspaceCounter}`;
  keyspaces.push(ks);
  return ks;
}

async function open(
  keyspace: string,
  options: Partial<CassandraJournalOptions> = {},
): Promise<CassandraJournal> {
  return CassandraJournal.connect({
    contactPoints: [await contactPoint()],
    keyspace,
    requestTimeoutMs: 20_000,
    ...options,
  });
}

/** A plain driver session, to look at what the journal stored. */
async function rawClient(): Promise<cassandra.Client> {
  const client = new cassandra.Client({
    contactPoints: [await contactPoint()],
    localDataCenter: "datacenter1",
  });
  await client.connect();
  return client;
}

after(async () => {
  if (given && keyspaces.length > 0) {
    // A long-lived node: leave nothing behind.
    const client = await rawClient();
    try {
      // A schema change waits for the node's schema agreement: on a busy machine that
      // takes longer than the driver's 12 s default read timeout.
      for (const ks of keyspaces) {
        await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`, [], { readTimeout: 120_000 });
      }
    } finally {
      await client.shutdown();
    }
  }
  if (node !== undefined) await (await node).stop();
});

if (skip) {
  test("the Cassandra journal tests run against a real node", { skip }, () => {});
} else {
  journalConformanceSuite("CassandraJournal", async () => {
    const keyspace = newKeyspace("suite");
    const journal = await open(keyspace);
    return {
      journal,
      reopen: () => open(keyspace),
      cleanup: async () => {},
    };
  });

  describe("CassandraJournal (Cassandra-specific)", () => {
    test("appends that cross bucket boundaries land whole in one bucket, and buckets stay bounded", async () => {
      const keyspace = newKeyspace("buckets");
      const j = await open(keyspace, { bucketSize: 4 });
      const raw = await rawClient();
      try {
        const pool = "ns/buckets";
        const sizes = [3, 3, 1, 4, 2, 4, 4, 1, 1, 1, 3, 2];
        const batches: { first: number; size: number }[] = [];
        let version = 0;
        for (const size of sizes) {
          const batch = Array.from({ length: size }, (_, i) => ({ n: version + 1 + i }));
          const next = await j.append(
            { pool, shard: 7, epoch: 1, expectedVersion: version },
            batch,
          );
          assert.equal(next, version + size);
          batches.push({ first: version + 1, size });
          version = next;
        }
        await rejectsWith(
          j.append({ pool, shard: 7, epoch: 1, expectedVersion: version }, [1, 2, 3, 4, 5]),
          RangeError,
          "append of 5 events exceeds the journal's bucket size 4",
        );

        const rows = await raw.execute(
          `SELECT bucket, seq, version FROM ${keyspace}.events WHERE pool = ? AND bucket IN (0,1,2,3,4,5,6,7,8,9)`,
          [pool],
          { prepare: true },
        );
        const bucketOf = new Map<number, number>();
        const perBucket = new Map<number, number>();
        for (const r of rows.rows) {
          if (r.seq === null) continue;
          const b = (r.bucket as cassandra.types.Long).toNumber();
          bucketOf.set((r.seq as cassandra.types.Long).toNumber(), b);
          perBucket.set(b, (perBucket.get(b) ?? 0) + 1);
        }
        assert.equal(bucketOf.size, version);
        for (const { first, size } of batches) {
          // Each batch sits in the bucket of the version it was appended at.
          for (let s = first; s < first + size; s++) {
            assert.equal(bucketOf.get(s), Math.floor((first - 1) / 4), `seq ${s}`);
          }
        }
        assert.deepEqual(
          [...perBucket.keys()].sort(),
          Array.from({ length: perBucket.size }, (_, i) => i),
        );
        for (const [b, n] of perBucket) assert.ok(n < 2 * 4, `bucket ${b} holds ${n} events`);

        // A fresh instance (no cursor) loads everything, and so it does after a
        // snapshot at every seq, wherever that seq's bucket is.
        const k = await open(keyspace, { bucketSize: 4 });
        try {
          const all = await k.load(pool);
          assert.equal(all.version, version);
          assert.deepEqual(
            all.events.map((e) => e.event),
            Array.from({ length: version }, (_, i) => ({ n: i + 1 })),
          );
          for (let seq = 1; seq <= version; seq++) {
            await k.saveSnapshot(pool, { seq, state: { at: seq } });
            const fresh = await open(keyspace, { bucketSize: 4 });
            try {
              const loaded = await fresh.load(pool);
              assert.deepEqual(loaded.snapshot, { seq, state: { at: seq } });
              assert.deepEqual(
                loaded.events.map((e) => e.seq),
                Array.from({ length: version - seq }, (_, i) => seq + 1 + i),
              );
              assert.equal(loaded.version, version);
            } finally {
              await fresh.close();
            }
          }
          assert.equal(
            await k.append({ pool, shard: 7, epoch: 1, expectedVersion: version }, ["after"]),
            version + 1,
          );
        } finally {
          await k.close();
        }
      } finally {
        await j.close();
        await raw.shutdown();
      }
    });

    test("a fenced stale writer cannot append into a fresh bucket, nor after its own new bucket", async () => {
      const keyspace = newKeyspace("fresh_bucket");
      const stale = await open(keyspace, { bucketSize: 4 });
      const owner = await open(keyspace, { bucketSize: 4 });
      try {
        // The fence lands first: it opens bucket 1, and the stale writer's IF NOT EXISTS loses.
        const p1 = "ns/fence-first";
        assert.equal(
          await stale.append({ pool: p1, shard: 3, epoch: 1, expectedVersion: 0 }, [1, 2, 3, 4]),
          4,
        );
        await owner.fence(p1, 3, 2);
        await rejectsWith(
          stale.append({ pool: p1, shard: 3, epoch: 1, expectedVersion: 4 }, ["stale"]),
          FencedError,
          `pool ${p1} is fenced at epoch 2; writer epoch 1 is stale`,
        );
        assert.equal(
          await owner.append({ pool: p1, shard: 3, epoch: 2, expectedVersion: 4 }, ["owner"]),
          5,
        );
        let loaded = await stale.load(p1);
        assert.deepEqual(
          loaded.events.map((e) => e.event),
          [1, 2, 3, 4, "owner"],
        );
        assert.equal(loaded.fenceEpoch, 2);

        // The stale writer opens bucket 1 first: the fence then lands in bucket 1 too,
        // after it, and the stale writer's next append is refused.
        const p2 = "ns/append-first";
        await stale.append({ pool: p2, shard: 3, epoch: 1, expectedVersion: 0 }, [1, 2, 3]);
        assert.equal(
          await stale.append({ pool: p2, shard: 3, epoch: 1, expectedVersion: 3 }, [4, 5]),
          5,
        );
        await owner.fence(p2, 3, 2);
        await rejectsWith(
          stale.append({ pool: p2, shard: 3, epoch: 1, expectedVersion: 5 }, ["stale"]),
          FencedError,
          `pool ${p2} is fenced at epoch 2; writer epoch 1 is stale`,
        );
        loaded = await owner.load(p2);
        assert.equal(loaded.version, 5);
        assert.equal(loaded.fenceEpoch, 2);

        // A higher-epoch writer opening a new bucket carries the fence over, unchanged.
        assert.equal(
          await owner.append({ pool: p2, shard: 3, epoch: 9, expectedVersion: 5 }, [6, 7, 8]),
          8,
        );
        assert.equal(
          await owner.append({ pool: p2, shard: 3, epoch: 9, expectedVersion: 8 }, [9]),
          9,
        );
        const fresh = await open(keyspace, { bucketSize: 4 });
        try {
          assert.equal((await fresh.load(p2)).fenceEpoch, 2);
          await rejectsWith(
            fresh.append({ pool: p2, shard: 3, epoch: 1, expectedVersion: 9 }, ["stale"]),
            FencedError,
            `pool ${p2} is fenced at epoch 2; writer epoch 1 is stale`,
          );
        } finally {
          await fresh.close();
        }
      } finally {
        await stale.close();
        await owner.close();
      }
    });

    test("a fence racing a stale writer's appends across buckets leaves it nothing after the fence", async () => {
      // Bucket size 16: the stale writer crosses a boundary every ~8 appends. (A fence
      // only has to retry when the bucket it aimed at filled up meanwhile; with size 4
      // a tight writer can keep it chasing for dozens of rounds, see the docs.)
      const keyspace = newKeyspace("fence_race");
      const stale = await open(keyspace, { bucketSize: 16 });
      const owner = await open(keyspace, { bucketSize: 16 });
      try {
        for (let round = 0; round < 6; round++) {
          const pool = `ns/race-${round}`;
          let staleStop: unknown;
          let giveUp = false;
          const staleLoop = (async () => {
            let expected = 0;
            for (let i = 0; !giveUp; i++) {
              const batch = Array.from({ length: (i % 3) + 1 }, (_, k) => `stale-${i}-${k}`);
              try {
                expected = await stale.append(
                  { pool, shard: 5, epoch: 1, expectedVersion: expected },
                  batch,
                );
              } catch (e: unknown) {
                if (e instanceof VersionConflictError) {
                  expected = (await stale.load(pool)).version;
                  continue;
                }
                staleStop = e;
                return;
              }
            }
          })();
          let atFence: LoadedPool;
          let v: number;
          try {
            // Let the stale writer get going, across a boundary or a few, then take over.
            await new Promise((resolve) => setTimeout(resolve, 20 + round * 15));
            await owner.fence(pool, 5, 2);
            atFence = await owner.load(pool);
            v = atFence.version;
            for (let i = 0; i < 5; i++) {
              v = await owner.append({ pool, shard: 5, epoch: 2, expectedVersion: v }, [
                `owner-${i}`,
              ]);
            }
          } finally {
            // Should the owner fail, nothing would fence the stale writer: stop it.
            giveUp = true;
            await staleLoop;
          }
          assert.ok(
            staleStop instanceof FencedError,
            `stale writer stopped with ${String(staleStop)}`,
          );
          const final = await owner.load(pool);
          assert.deepEqual(
            final.events.map((e) => e.seq),
            Array.from({ length: v }, (_, i) => i + 1),
          );
          assert.deepEqual(final.events.slice(0, atFence.version), atFence.events);
          assert.deepEqual(
            final.events.slice(atFence.version).map((e) => e.event),
            ["owner-0", "owner-1", "owner-2", "owner-3", "owner-4"],
          );
        }
      } finally {
        await stale.close();
        await owner.close();
      }
    });

    test("two sessions racing across bucket boundaries write every seq exactly once", async () => {
      const keyspace = newKeyspace("race");
      const a = await open(keyspace, { bucketSize: 4 });
      const b = await open(keyspace, { bucketSize: 4 });
      try {
        const pool = "ns/race";
        const committed: { version: number; batch: string[] }[] = [];
        let conflicts = 0;
        const writer = async (j: Journal, name: string): Promise<void> => {
          let expected = 0;
          for (let i = 0; i < 25; i++) {
            const batch = Array.from({ length: (i % 3) + 1 }, (_, k) => `${name}-${i}-${k}`);
            for (;;) {
              try {
                expected = await j.append(
                  { pool, shard: 9, epoch: 1, expectedVersion: expected },
                  batch,
                );
                committed.push({ version: expected, batch });
                break;
              } catch (e: unknown) {
                if (!(e instanceof VersionConflictError)) throw e;
                conflicts++;
                expected = (await j.load(pool)).version;
              }
            }
          }
        };
        await Promise.all([writer(a, "a"), writer(b, "b"), writer(a, "a2"), writer(b, "b2")]);
        const total = committed.reduce((n, c) => n + c.batch.length, 0);
        assert.ok(conflicts > 0, "the writers never raced");
        const loaded = await b.load(pool);
        assert.equal(loaded.version, total);
        assert.deepEqual(
          loaded.events.map((e) => e.seq),
          Array.from({ length: total }, (_, i) => i + 1),
        );
        assert.equal(new Set(loaded.events.map((e) => e.event)).size, total);
        for (const c of committed) {
          assert.deepEqual(
            loaded.events.slice(c.version - c.batch.length, c.version).map((e) => e.event),
            c.batch,
          );
        }
      } finally {
        await a.close();
        await b.close();
      }
    });

    test("schema migration is idempotent: concurrent connects and a later one agree on one schema", async () => {
      const keyspace = newKeyspace("migrate");
      const journals: CassandraJournal[] = await Promise.all([
        open(keyspace),
        open(keyspace),
        open(keyspace),
      ]);
      journals.push(await open(keyspace));
      const raw = await rawClient();
      try {
        const rows = await raw.execute(
          `SELECT version, applied_by FROM ${keyspace}.schema_migrations`,
        );
        assert.deepEqual(
          rows.rows.map((r) => r.version),
          [1],
        );
        const tables = await raw.execute(
          "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
          [keyspace],
        );
        assert.deepEqual(tables.rows.map((r) => r.table_name).sort(), [
          "events",
          "pools_by_shard",
          "schema_migrations",
          "snapshots",
        ]);
        const first = journals[0] as Journal;
        const last = journals[3] as Journal;
        await first.append({ pool: "ns/m", shard: 1, epoch: 0, expectedVersion: 0 }, ["x"]);
        assert.equal((await last.load("ns/m")).version, 1);

        await raw.execute(
          `INSERT INTO ${keyspace}.schema_migrations (version, description) VALUES (99, 'from the future')`,
        );
        await rejectsWith(
          open(keyspace),
          CassandraSchemaTooNewError,
          `journal keyspace ${keyspace} has schema version 99, newer than this build's 1; upgrade Berth`,
        );
      } finally {
        for (const j of journals) await j.close();
        await raw.shutdown();
      }
    });

    test("connecting where no Cassandra listens fails with JournalUnavailableError naming the address", async () => {
      const port = await closedPort();
      await rejectsWith(
        CassandraJournal.connect({
          contactPoints: [`127.0.0.1:${port}`],
          keyspace: "berth_unreachable",
          connectTimeoutMs: 2000,
        }),
        JournalUnavailableError,
        new RegExp(
          `^cannot connect to Cassandra at 127\\.0\\.0\\.1:${port} \\(data centre datacenter1\\): no host available \\(127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`,
        ),
        (e) => assert.equal(e.outcomeUnknown, false),
      );
    });

    test("an append whose answer never arrives is an unknown outcome, and load then tells the truth", async () => {
      const keyspace = newKeyspace("unknown");
      await (await open(keyspace)).close(); // create the schema directly, not through the proxy
      const [host = "", port = ""] = (await contactPoint()).split(":");
      const proxy = await startProxy(host, Number(port));
      const j = await CassandraJournal.connect({
        contactPoints: [`127.0.0.1:${proxy.port}`],
        keyspace,
        requestTimeoutMs: 1500,
      });
      const k = await open(keyspace);
      try {
        const pool = "ns/unknown";
        // Two appends first, so both statement shapes are prepared on the session.
        assert.equal(await j.append({ pool, shard: 2, epoch: 1, expectedVersion: 0 }, ["a"]), 1);
        assert.equal(await j.append({ pool, shard: 2, epoch: 1, expectedVersion: 1 }, ["b"]), 2);
        proxy.holdReplies(true);
        await rejectsWith(
          j.append({ pool, shard: 2, epoch: 1, expectedVersion: 2 }, ["c", "d"]),
          JournalUnavailableError,
          /^append on pool ns\/unknown failed on Cassandra at 127\.0\.0\.1:\d+ \(data centre datacenter1\): client-side timeout: .* did not reply before timeout 1500 ms \(outcome unknown: re-read the pool before answering\)$/,
          (e) => assert.equal(e.outcomeUnknown, true),
        );
        // The request reached Cassandra; only the answer was lost. A re-read says so.
        const loaded = await k.load(pool);
        assert.equal(loaded.version, 4);
        assert.deepEqual(
          loaded.events.map((e) => e.event),
          ["a", "b", "c", "d"],
        );
        await rejectsWith(
          j.load(pool),
          JournalUnavailableError,
          /^load on pool ns\/unknown .*client-side timeout/,
          (e) => assert.equal(e.outcomeUnknown, false),
        );
        // The held replies arrive late (the driver drops them: their requests timed out);
        // the same session then works again and sees the truth.
        proxy.holdReplies(false);
        const reloaded = await eventually(() => j.load(pool));
        assert.equal(reloaded.version, 4);
        assert.equal(await j.append({ pool, shard: 2, epoch: 1, expectedVersion: 4 }, ["e"]), 5);
      } finally {
        await j.close();
        await k.close();
        await proxy.close();
      }
    });
  });
}

type ErrorClass = abstract new (...args: never[]) => Error;

async function rejectsWith<C extends ErrorClass>(
  promise: Promise<unknown>,
  cls: C,
  message: string | RegExp,
  more?: (e: InstanceType<C>) => void,
): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(
      e instanceof cls,
      `expected ${cls.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
    );
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    more?.(e as InstanceType<C>);
    return true;
  });
}

/** Retries `f` while it fails with JournalUnavailableError (the session reconnecting), up to 30 s. */
async function eventually<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (e: unknown) {
      if (!(e instanceof JournalUnavailableError) || i >= 150) throw e;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A TCP proxy in front of the node that can hold back Cassandra's replies (requests
 * still reach it) and release them later. (Cutting the connections instead makes
 * cassandra-driver 4.10 leave an orphaned host pool reconnecting after shutdown,
 * which keeps the process alive.)
 */
async function startProxy(
  host: string,
  port: number,
): Promise<{
  port: number;
  holdReplies(on: boolean): void;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let held: { to: Socket; data: Buffer }[] | undefined;
  const server: Server = createServer((client) => {
    const upstream = new (client.constructor as typeof Socket)();
    upstream.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => s.destroy());
      s.on("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on("data", (d: Buffer) => upstream.write(d));
    upstream.on("data", (d: Buffer) => {
      if (held) held.push({ to: client, data: d });
      else client.write(d);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    holdReplies: (on) => {
      if (on) {
        held ??= [];
        return;
      }
      const release = held ?? [];
      held = undefined;
      for (const { to, data } of release) to.write(data);
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
