// The worker's own metrics move when the thing they count happens: two real workers
// over real gRPC sharing one SQLite journal, scraped over HTTP as Prometheus would.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseRichStatus, WorkerServiceClient } from "@berth/common";
import { internal, StaticShardMapSource, shardOf } from "@berth/proto";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { pino } from "pino";
import { SqliteJournal } from "../journal/sqlite-journal.js";
import { type RunningWorker, startWorker } from "./worker-server.js";

const SHARDS = 4;
const logger = pino({ level: "silent" });
type Client = InstanceType<typeof WorkerServiceClient>;

function unary<T>(invoke: (cb: (e: ServiceError | null, r: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => invoke((e, r) => (e ? reject(e) : resolve(r))));
}
const opts = () => ({ deadline: Date.now() + 5000 });

/** The reason a call failed with (it must fail). */
async function reasonOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e: unknown) {
    return parseRichStatus(e).reason;
  }
  assert.fail("expected the call to fail");
}

/** The value of one sample of a scrape, e.g. `berth_requests_total{…}`; undefined if absent. */
function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

function poolIn(shard: number, prefix: string): string {
  for (let i = 0; ; i++) {
    const id = `default/${prefix}-${i}`;
    if (shardOf(id, SHARDS) === shard) return id;
  }
}

function mapOf(
  revision: number,
  members: RunningWorker[],
  owner: (shard: number) => [RunningWorker, number],
) {
  return {
    revision,
    shardCount: SHARDS,
    members: members.map((m) => ({ id: m.id, address: m.address })),
    quorum: 1,
    shards: Array.from({ length: SHARDS }, (_, shard) => {
      const [w, epoch] = owner(shard);
      return { shard, owner: w.id, epoch, state: internal.ShardState.SHARD_STATE_ACTIVE };
    }),
  };
}

describe("worker metrics", () => {
  let dir: string;
  let journalA: SqliteJournal;
  let journalB: SqliteJournal;
  const sourceA = new StaticShardMapSource();
  const sourceB = new StaticShardMapSource();
  let a: RunningWorker;
  let b: RunningWorker;
  let client: Client;
  /** A scrape of A before it knew any ShardMap. */
  let notReadyScrape = "";
  const scrape = async () => (await fetch(`http://${a.httpAddress}/metrics`)).text();
  const configure = (pool: string, capacity: number) =>
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
    );
  const reserve = (pool: string, units: number, requestId: string) =>
    unary((cb) =>
      client.reserve(
        { request: { pool, units, requestId }, epoch: 0, callToken: "" },
        new Metadata(),
        opts(),
        cb,
      ),
    );
  const getPool = (pool: string) =>
    unary((cb) => client.getPool({ request: { pool }, epoch: 0 }, new Metadata(), opts(), cb));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "berth-worker-metrics-"));
    journalA = SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
    journalB = SqliteJournal.open(join(dir, "journal.db"), { synchronous: "NORMAL" });
    const common = { grpc: "127.0.0.1:0", logger, gossip: { antiEntropyIntervalMs: 100 } };
    a = await startWorker({
      ...common,
      id: "worker-a",
      http: "127.0.0.1:0",
      journal: journalA,
      shardMapSource: sourceA,
    });
    b = await startWorker({
      ...common,
      id: "worker-b",
      journal: journalB,
      shardMapSource: sourceB,
    });
    notReadyScrape = await scrape();
    const map1 = mapOf(1, [a, b], () => [a, 1]);
    sourceA.set(map1);
    sourceB.set(map1);
    await a.whenReady();
    client = new WorkerServiceClient(a.address, credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await a?.close();
    await b?.close();
    await journalA?.close();
    await journalB?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("reserve outcomes are counted by reason, and the pool totals follow the pools served", async () => {
    const full = poolIn(1, "full");
    const half = poolIn(2, "half");
    await configure(full, 3);
    await configure(half, 4);
    await reserve(full, 3, "fill");
    await reserve(half, 2, "half");
    assert.equal(await reasonOf(reserve(full, 1, "more")), "INSUFFICIENT_CAPACITY");
    assert.equal(await reasonOf(reserve("default/never-configured", 1, "x")), "POOL_NOT_FOUND");
    assert.equal(await reasonOf(reserve(full, 0, "zero")), "INVALID_FIELD");
    assert.equal(await reasonOf(reserve(full, 2, "fill")), "REQUEST_ID_REUSED");
    assert.equal(await reasonOf(getPool("default/never-configured")), "POOL_NOT_FOUND");

    const text = await scrape();
    const requests = (method: string, outcome: string) =>
      sample(text, "berth_requests_total", { method, outcome });
    assert.equal(requests("Reserve", "ok"), 2);
    assert.equal(requests("Reserve", "insufficient_capacity"), 1);
    assert.equal(requests("Reserve", "pool_not_found"), 1);
    assert.equal(requests("Reserve", "invalid_field"), 1);
    assert.equal(requests("Reserve", "request_id_reused"), 1);
    assert.equal(requests("GetPool", "pool_not_found"), 1);
    assert.equal(requests("Configure", "ok"), 2);
    assert.equal(sample(text, "berth_pool_capacity_units"), 7);
    assert.equal(sample(text, "berth_pool_reserved_units"), 5);
    assert.equal(sample(text, "berth_pools_full"), 1);
    assert.equal(sample(text, "berth_pools_overcommitted"), 0);
    assert.equal(sample(text, "berth_shards_owned"), SHARDS);
    assert.equal(sample(text, "berth_shards_draining"), 0);
    assert.equal(sample(text, "berth_worker_ready"), 1);
    assert.equal(sample(notReadyScrape, "berth_worker_ready"), 0, "not ready before the map");
    assert.equal(sample(text, "berth_journal_fence_rejections_total"), 0);
    assert.ok((sample(text, "berth_recovery_seconds_count") ?? 0) >= SHARDS);
  });

  test("an append refused by the fence is counted, and answered NOT_OWNER", async () => {
    const pool = poolIn(3, "fenced");
    await configure(pool, 10);
    await reserve(pool, 1, "before");
    // B takes shard 3 at epoch 2 and fences its pools; A has not heard (a paused owner).
    sourceB.set(mapOf(2, [a, b], (s) => (s === 3 ? [b, 2] : [a, 1])));
    await b.whenReady();
    assert.equal(await reasonOf(reserve(pool, 1, "after")), "NOT_OWNER");
    const text = await scrape();
    assert.equal(sample(text, "berth_journal_fence_rejections_total"), 1);
    assert.equal(sample(text, "berth_journal_append_seconds_count", { result: "fenced" }), 1);
    assert.equal(
      sample(text, "berth_requests_total", { method: "Reserve", outcome: "not_owner" }),
      1,
    );
  });

  test("the replica's staleness is the age of its oldest confirmed counters", async () => {
    // A confirms its own pools every anti-entropy round (100 ms here), B's by B's pushes.
    const staleness = sample(await scrape(), "berth_gossip_replica_staleness_seconds");
    assert.ok(staleness !== undefined && staleness >= 0 && staleness < 5, `staleness ${staleness}`);
  });

  test("a graceful leave is timed from leaving to holding no shard", async () => {
    const before = sample(await scrape(), "berth_worker_leave_seconds_count", {
      result: "handed_off",
    });
    assert.equal(before, undefined);
    const leaving = a.leave({ timeoutMs: 5000 });
    // The publisher moves every shard of A to B.
    const map3 = mapOf(3, [a, b], () => [b, 3]);
    sourceA.set(map3);
    sourceB.set(map3);
    const result = await leaving;
    assert.equal(result.handedOff, true);
    const text = await scrape();
    assert.equal(sample(text, "berth_worker_leave_seconds_count", { result: "handed_off" }), 1);
    assert.equal(sample(text, "berth_shards_owned"), 0);
    assert.equal(sample(text, "berth_pool_capacity_units"), 0);
  });
});
