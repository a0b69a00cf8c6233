// `npm run bench:memory`: bytes of V8 heap per idle pool in a worker (issue 10, item 4:
// "≤ 1 KB per idle pool"). Builds, in this process, the structures a worker keeps for
// pools it owns and that have no reservations, the way the worker builds them when it
// recovers a shard: a ShardOwnership (the real one) recovers every pool from a journal
// whose `recoverShard` answers with one JSON-parsed `configured` event per pool (what
// the SQLite journal's answer holds), each entity publishes its counters to a real
// Gossiper and Replica (no peers) as the worker's `onCommitted` does. Then forces GC
// (--expose-gc, which the npm script passes) and reports the heap delta over a run with
// N = 0, divided by N. Also measures the layers alone: the domain state (initialState +
// a `configured` event), and the gossip replica entry. --heap-snapshot FILE writes the
// worker's heap with N pools instead (open it in Chrome's DevTools to see what holds the bytes).
//   npm run bench:memory -- [--pools 100000] [--labels 3] [--window] [--rounds 3] [--json FILE]
//                           [--heap-snapshot FILE]
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { writeHeapSnapshot } from "node:v8";
import { Gossiper, Replica } from "@berth/common";
import { internal, StaticShardMapSource, shardOf } from "@berth/proto";
import {
  countersOf,
  evolve,
  initialState,
  type Journal,
  type LoadedPool,
  type PoolState,
  type PoolView,
  parsePoolEvent,
  ShardOwnership,
} from "@berth/worker";
import { pino } from "pino";
import { Registry } from "prom-client";

const { values: args } = parseArgs({
  options: {
    pools: { type: "string", default: "100000" },
    labels: { type: "string", default: "3" },
    window: { type: "boolean", default: false },
    shards: { type: "string", default: "256" },
    rounds: { type: "string", default: "3" },
    json: { type: "string" },
    "heap-snapshot": { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(
    "usage: npm run bench:memory -- [--pools N] [--labels K] [--window] [--shards S] [--rounds R] [--json FILE] [--heap-snapshot FILE]",
  );
  process.exit(0);
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error("memory-bench: run with --expose-gc (npm run bench:memory does)");
  process.exit(2);
}

const POOLS = Number(args.pools);
const LABELS = Number(args.labels);
const WINDOW = args.window;
const SHARDS = Number(args.shards);
const ROUNDS = Number(args.rounds);
const NODE = "worker-0";
const logger = pino({ level: "silent" });

/** The `configured` event of pool `i`, as the journal stores it (JSON text). */
function configuredEventJson(i: number): string {
  const labels: Record<string, string> = {};
  // Realistic label values: a few shared values (zone), some unique ones (date).
  const values = [`zone-${i % 8}`, `2030-06-${String((i % 28) + 1).padStart(2, "0")}`, `${i}`];
  for (let k = 0; k < LABELS; k++) labels[`label-${k}`] = values[k % values.length] as string;
  // --window: a one-hour delivery slot, as most pools of examples/pools.yaml have.
  const startMs = 1_900_000_000_000 + (i % 1000) * 3_600_000;
  const window = WINDOW ? { window: { startMs, endMs: startMs + 3_600_000 } } : {};
  return JSON.stringify({
    type: "configured",
    spec: { capacity: 100, labels, closed: false, generation: 1, ...window },
    at: 1_900_000_000_000 + i,
  });
}

function poolId(i: number): string {
  return `bench/pool-${String(i).padStart(7, "0")}`;
}

async function settle(): Promise<number> {
  // Let timers (the gossiper's batched push) and finalizers run, then collect until the
  // heap stops shrinking: on a busy machine one pause is not always enough, and a round
  // read too early counts leftover garbage as pools (rounds of +565 B/pool were seen).
  let last = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 100));
    for (let j = 0; j < 2; j++) {
      gc?.();
      await new Promise((r) => setImmediate(r));
    }
    const used = process.memoryUsage().heapUsed;
    if (used >= last - 64 * 1024) return used;
    last = used;
  }
  return last;
}

/** A journal holding N idle pools, answering `recoverShard` as the SQLite journal does. */
class IdlePoolsJournal implements Journal {
  readonly #byShard = new Map<number, string[]>();
  constructor(n: number) {
    for (let i = 0; i < n; i++) {
      const pool = poolId(i);
      const shard = shardOf(pool, SHARDS);
      let list = this.#byShard.get(shard);
      if (list === undefined) {
        list = [];
        this.#byShard.set(shard, list);
      }
      list.push(pool);
    }
  }
  async recoverShard(shard: number, epoch: number) {
    const pools = new Map<string, LoadedPool>();
    for (const pool of this.#byShard.get(shard) ?? []) {
      const i = Number(pool.slice(pool.indexOf("-") + 1));
      pools.set(pool, {
        snapshot: undefined,
        events: [{ seq: 1, event: JSON.parse(configuredEventJson(i)) }],
        version: 1,
        fenceEpoch: epoch,
      });
    }
    return { pools };
  }
  async fence(): Promise<void> {}
  async load(): Promise<LoadedPool> {
    return { snapshot: undefined, events: [], version: 0, fenceEpoch: 0 };
  }
  async append(): Promise<number> {
    throw new Error("idle pools take no appends");
  }
  async saveSnapshot(): Promise<void> {}
  async listPools(shard: number): Promise<string[]> {
    return this.#byShard.get(shard) ?? [];
  }
  async close(): Promise<void> {}
}

function shardMap(): internal.ShardMap {
  return {
    revision: 1,
    shardCount: SHARDS,
    quorum: 1,
    members: [{ id: NODE, address: "127.0.0.1:1" }],
    shards: Array.from({ length: SHARDS }, (_, shard) => ({
      shard,
      owner: NODE,
      epoch: 1,
      state: internal.ShardState.SHARD_STATE_ACTIVE,
    })),
  };
}

/** A worker's structures for `n` recovered idle pools; resolves once every shard serves. */
async function buildWorker(n: number): Promise<() => Promise<void>> {
  const replica = new Replica(Date.now);
  let ownedViews: () => Iterable<PoolView> = () => [];
  // As the worker wires it (worker-server.ts): an owner's gossiper keeps digests of
  // what it owns.
  const gossiper = new Gossiper({
    nodeId: NODE,
    replica,
    peers: () => [],
    owned: function* () {
      const now = Date.now();
      for (const v of ownedViews()) yield countersOf(v, now);
    },
    logger,
    registry: new Registry(),
  });
  const ownership = new ShardOwnership({
    nodeId: NODE,
    journal: new IdlePoolsJournal(n),
    source: new StaticShardMapSource(shardMap()),
    logger,
    onCommitted: (view) => gossiper.publish(countersOf(view, Date.now())),
  });
  ownedViews = () => ownership.ownedViews();
  ownership.start();
  await gossiper.start();
  await new Promise<void>((resolve) => {
    if (ownership.readiness().ready) return resolve();
    const off = ownership.onChange(() => {
      if (ownership.readiness().ready) {
        off();
        resolve();
      }
    });
  });
  if (ownership.stats().poolsLoaded !== n || replica.size !== n) {
    throw new Error(
      `expected ${n} pools, loaded ${ownership.stats().poolsLoaded}, replica ${replica.size}`,
    );
  }
  return async () => {
    await ownership.close();
    await gossiper.stop();
  };
}

/** The domain state alone: initialState + the `configured` event, as recovery folds it. */
function buildStates(n: number): PoolState[] {
  const states: PoolState[] = [];
  for (let i = 0; i < n; i++) {
    const pool = poolId(i);
    const event = parsePoolEvent(pool, 1, JSON.parse(configuredEventJson(i)));
    states.push(evolve(initialState(pool), event, 1));
  }
  return states;
}

/** The gossip replica alone: one entry per pool, as a worker's publish applies them. */
function buildReplica(n: number): Replica {
  const replica = new Replica(Date.now);
  const now = Date.now();
  for (const s of buildStates(n)) {
    const spec = s.spec;
    if (spec === undefined) throw new Error("unconfigured");
    replica.apply(
      [
        countersOf(
          {
            pool: s.pool,
            version: s.version,
            capacity: spec.capacity,
            reserved: 0,
            available: spec.capacity,
            closed: false,
            labels: spec.labels,
            window: spec.window,
            generation: spec.generation,
            activeReservations: 0,
            overCommitted: false,
            retired: false,
          },
          now,
        ),
      ],
      { from: NODE },
    );
  }
  return replica;
}

interface Measurement {
  readonly layer: string;
  readonly bytesPerPool: number[];
}

async function measure(
  layer: string,
  build: (n: number) => Promise<unknown>,
  release: (built: unknown) => Promise<void>,
): Promise<Measurement> {
  const bytesPerPool: number[] = [];
  // What is built lives here only, so that clearing it frees it (an async function's
  // locals may outlive their loop iteration).
  const held: { built?: unknown } = {};
  const cycle = async (n: number): Promise<number> => {
    const before = await settle();
    held.built = await build(n);
    const after = await settle();
    await release(held.built);
    delete held.built;
    return after - before;
  };
  for (let r = 0; r < ROUNDS; r++) {
    // Subtract what the structure costs with no pool at all (its fixed part).
    const fixed = await cycle(0);
    bytesPerPool.push(((await cycle(POOLS)) - fixed) / POOLS);
  }
  return { layer, bytesPerPool };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

if (args["heap-snapshot"] !== undefined) {
  // For finding where the bytes go: the worker's heap with N pools, in Chrome's format.
  const stop = await buildWorker(POOLS);
  await settle();
  console.log(`heap snapshot written to ${writeHeapSnapshot(args["heap-snapshot"])}`);
  await stop();
  process.exit(0);
}

const results: Measurement[] = [];
results.push(
  await measure(
    "domain state (PoolState)",
    async (n) => buildStates(n),
    async () => {},
  ),
);
results.push(
  await measure(
    "gossip replica entry",
    async (n) => buildReplica(n),
    async () => {},
  ),
);
results.push(
  await measure(
    "worker (ShardOwnership + entities + gossip)",
    async (n) => buildWorker(n),
    async (stop) => (stop as () => Promise<void>)(),
  ),
);

console.log(
  `memory-bench: ${POOLS} idle pools, ${LABELS} labels each${WINDOW ? ", a window each" : ""}, ${SHARDS} shards, ${ROUNDS} rounds; node ${process.version}; load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
for (const m of results) {
  console.log(
    `  ${m.layer.padEnd(46)} ${median(m.bytesPerPool).toFixed(0).padStart(6)} B/pool  (rounds: ${m.bytesPerPool.map((b) => b.toFixed(0)).join(", ")})`,
  );
}
if (args.json !== undefined) {
  writeFileSync(
    args.json,
    `${JSON.stringify({ pools: POOLS, labels: LABELS, window: WINDOW, shards: SHARDS, results }, null, 2)}\n`,
  );
}
