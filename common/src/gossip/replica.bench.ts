// Query throughput of a Replica (run by hand, not by the test command):
//   node_modules/.bin/node --import tsx common/src/gossip/replica.bench.ts [pools...]
import { internal, parseLabelSelector } from "@berth/proto";
import { type AvailabilityQuery, Replica } from "./replica.js";

const ZONES = ["north", "south", "east", "west"];
const KINDS = ["van", "bike", "truck"];
const HOUR = 3_600_000;
const DAY0 = Date.UTC(2030, 0, 1);
const ts = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: 0 });

function build(n: number): Replica {
  const replica = new Replica(Date.now);
  const batch: internal.PoolCounters[] = [];
  for (let i = 0; i < n; i++) {
    const slot = i % 240; // ten days of hourly slots
    batch.push(
      internal.PoolCounters.fromPartial({
        pool: `ns-${i % 50}/slot-${i.toString(36).padStart(5, "0")}`,
        capacity: 20,
        reserved: i % 23, // some full, some over-committed
        closed: i % 97 === 0,
        labels: { zone: ZONES[i % 4] as string, kind: KINDS[i % 3] as string },
        window: { start: ts(DAY0 + slot * HOUR), end: ts(DAY0 + (slot + 1) * HOUR) },
        version: 1,
      }),
    );
  }
  replica.apply(batch);
  return replica;
}

function rate(label: string, replica: Replica, query: AvailabilityQuery, pages: boolean): void {
  const budgetMs = 1000;
  let ops = 0;
  let results = 0;
  const start = performance.now();
  while (performance.now() - start < budgetMs) {
    let token = "";
    do {
      const page = replica.query({ ...query, pageToken: token });
      results += page.pools.length;
      ops++;
      token = pages ? page.nextPageToken : "";
    } while (token !== "");
  }
  const s = (performance.now() - start) / 1000;
  console.log(
    `${String(replica.size).padStart(7)} pools  ${label.padEnd(44)} ${Math.round(ops / s)
      .toString()
      .padStart(8)} queries/s  ${(results / ops).toFixed(1).padStart(6)} pools/page`,
  );
}

const sizes = process.argv.slice(2).map(Number);
for (const n of sizes.length > 0 ? sizes : [1_000, 100_000]) {
  const t0 = performance.now();
  const replica = build(n);
  const loadMs = performance.now() - t0;
  console.log(`${String(n).padStart(7)} pools  loaded in ${loadMs.toFixed(0)} ms (one apply)`);
  const base: AvailabilityQuery = {
    minUnits: 0,
    includeClosed: false,
    pageSize: 100,
    pageToken: "",
  };
  rate("first page, no filter", replica, base, false);
  rate(
    "first page, selector zone=north,kind=van",
    replica,
    {
      ...base,
      selector: parseLabelSelector("zone=north,kind=van"),
    },
    false,
  );
  rate(
    "first page, selector + 1h window + 5 units",
    replica,
    {
      ...base,
      selector: parseLabelSelector("zone in (north,south)"),
      window: { startMs: DAY0 + 5 * HOUR, endMs: DAY0 + 6 * HOUR },
      minUnits: 5,
    },
    false,
  );
  rate(
    "every page (100), selector kind=bike",
    replica,
    {
      ...base,
      selector: parseLabelSelector("kind=bike"),
    },
    true,
  );
  // A pool id token in the middle: the binary search, not a scan, finds the start.
  const mid = [...replica.entries()][Math.floor(n / 2)]?.counters.pool ?? "";
  rate(
    "one page from the middle (token)",
    replica,
    {
      ...base,
      pageToken: Buffer.from(mid).toString("base64url"),
    },
    false,
  );
}
