// Bytes per replica entry for pools other nodes own (run by hand, not by the test command):
//   node_modules/.bin/node --expose-gc --import tsx common/src/gossip/replica-memory.bench.ts [--window] [--not-decoded]
// Applies 100,000 entries decoded from PushRequests of 1,000, as a Push handler does
// (`decoded: true`; --not-decoded: as if something else still held them), with the
// labels and windows of `npm run bench:memory` (which measures a worker's own pools).
// Reports the heap delta over the same run with no entry, divided by the entries,
// median of 3 rounds.
import { internal, timestampOf } from "@berth/proto";
import { Replica } from "./replica.js";

const POOLS = 100_000;
const WINDOW = process.argv.includes("--window");
const DECODED = !process.argv.includes("--not-decoded");
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --expose-gc");

function counters(i: number): internal.PoolCounters {
  const labels = {
    "label-0": `zone-${i % 8}`,
    "label-1": `2030-06-${String((i % 28) + 1).padStart(2, "0")}`,
    "label-2": `${i}`,
  };
  const startMs = 1_900_000_000_000 + (i % 1000) * 3_600_000;
  const window = { start: timestampOf(startMs), end: timestampOf(startMs + 3_600_000) };
  return internal.PoolCounters.fromPartial({
    pool: `bench/pool-${String(i).padStart(7, "0")}`,
    capacity: 100,
    labels,
    ...(WINDOW ? { window } : {}),
    version: 1,
    confirmedAt: timestampOf(Date.now()),
  });
}

function build(n: number): Replica {
  const replica = new Replica(Date.now);
  for (let i = 0; i < n; i += 1000) {
    const entries: internal.PoolCounters[] = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) entries.push(counters(j));
    const bytes = internal.PushRequest.encode({ from: "worker-1", entries }).finish();
    const request = internal.PushRequest.decode(bytes);
    replica.apply(request.entries, { from: request.from, decoded: DECODED });
  }
  return replica;
}

async function settle(): Promise<number> {
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

const held: { replica?: Replica } = {};
const cycle = async (n: number): Promise<number> => {
  const before = await settle();
  held.replica = build(n);
  const after = await settle();
  delete held.replica;
  return after - before;
};
const rounds: number[] = [];
for (let r = 0; r < 3; r++) {
  const fixed = await cycle(0);
  rounds.push(((await cycle(POOLS)) - fixed) / POOLS);
}
const median = [...rounds].sort((a, b) => a - b)[1] as number;
console.log(
  `replica entry decoded from a Push${WINDOW ? ", a window each" : ""}${DECODED ? "" : " (applied without `decoded`)"}: ${median.toFixed(0)} B/pool (rounds: ${rounds.map((b) => b.toFixed(0)).join(", ")})`,
);
