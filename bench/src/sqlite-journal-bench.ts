/**
 * Micro-benchmark of the SQLite journal alone (no gRPC, no entity): appends with
 * synchronous=FULL from writers that each keep one append in flight, as pool entities do.
 *
 * - **hot**: one pool, one writer whose appends carry `c` events (the batch a hot pool's
 *   entity reaches with `c` reserves in flight);
 * - **1,000 pools**: `c` writers on `c` of 1,000 pools (round robin), one event per append.
 *
 * Each cell runs in 1 or 3 child processes sharing one fresh file (the local cluster's
 * layout: each process writes its own pools). Every child reports appends/s, mean and p99
 * append latency, and how much its event loop was blocked: `monitorEventLoopDelay`
 * (p99 / max delay) and the main thread's event-loop utilisation (busy fraction).
 *
 * Implementations are compared in the same run, cells interleaved: `--impl
 * NAME=PATH[;key=value,…]` (repeatable) names a module exporting `SqliteJournal` (an
 * empty PATH: this checkout's, also added when none is given) and open options, e.g.
 * `--impl baseline=/tmp/berth-base/worker/src/journal/sqlite-journal.ts --impl
 * "poll-1ms=;lockPollMs=1"`.
 *
 * Run: `node_modules/.bin/node --import tsx bench/src/sqlite-journal-bench.ts
 * [--impl NAME=PATH]… [--seconds 2] [--rounds 1] [--concurrency 1,8,64] [--processes 1,3]`
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const thisFile = fileURLToPath(import.meta.url);
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const defaultImpl = fileURLToPath(
  new URL("../../worker/src/journal/sqlite-journal.ts", import.meta.url),
);

interface JournalLike {
  append(
    target: { pool: string; shard: number; epoch: number; expectedVersion: number },
    events: readonly unknown[],
  ): Promise<number>;
  close(): Promise<void>;
}
interface JournalModule {
  SqliteJournal: { open(path: string, options?: Record<string, unknown>): JournalLike };
}

type Layout = "hot" | "1000 pools";

/** A module exporting SqliteJournal, and the options its journals are opened with. */
interface Impl {
  readonly name: string;
  readonly path: string;
  readonly options: Record<string, unknown>;
}

/** What one child reports. */
interface ChildResult {
  readonly appends: number;
  readonly events: number;
  readonly seconds: number;
  readonly latenciesMs: number[];
  /** Event-loop delay beyond the monitor's 1 ms resolution, ms. */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  /** Fraction of the run the main thread's event loop was busy. */
  readonly loopUtilization: number;
  /** Process CPU (all threads) per append, ms. */
  readonly cpuMsPerAppend: number;
}

/** One cell's figures, all processes together. */
export interface CellFigure {
  readonly impl: string;
  readonly layout: Layout;
  readonly concurrency: number;
  readonly processes: number;
  readonly appendsPerSecond: number;
  readonly eventsPerSecond: number;
  readonly meanMs: number;
  readonly p99Ms: number;
  /** Worst child. */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  readonly loopUtilization: number;
  readonly cpuMsPerAppend: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/** Child mode: opens the journal, says "ready", waits for "go", runs, prints its result. */
async function child(argv: string[]): Promise<void> {
  const [implPath, optionsText, db, layoutText, cText, indexText, secondsText] = argv;
  const layout = layoutText as Layout;
  const c = Number(cText);
  const index = Number(indexText);
  const seconds = Number(secondsText);
  const mod = (await import(pathToFileURL(implPath as string).href)) as JournalModule;
  const journal = mod.SqliteJournal.open(db as string, JSON.parse(optionsText as string));
  const input = createInterface({ input: process.stdin });
  process.stdout.write("ready\n");
  await new Promise<void>((resolve) => input.once("line", () => resolve()));
  input.close();

  const pools =
    layout === "hot"
      ? [`p${index}/hot`]
      : Array.from({ length: 1000 }, (_, i) => `p${index}/pool-${i}`);
  const versions = new Map<string, number>(pools.map((p) => [p, 0]));
  const writers = layout === "hot" ? 1 : c;
  const eventsPerAppend = layout === "hot" ? c : 1;
  const payload = Array.from({ length: eventsPerAppend }, (_, k) => ({
    type: "reserved",
    id: `r-${k}`,
    amount: 1,
    requestId: "00000000-0000-4000-8000-000000000000",
  }));
  const latencies: number[] = [];
  let appends = 0;
  const warmupMs = 300;
  const start = performance.now();
  const end = start + warmupMs + seconds * 1000;
  let measuring = false;
  const h = monitorEventLoopDelay({ resolution: 1 });
  let elu0 = performance.eventLoopUtilization();
  let cpu0 = process.cpuUsage();
  let t0 = start;
  setTimeout(() => {
    measuring = true;
    h.enable();
    elu0 = performance.eventLoopUtilization();
    cpu0 = process.cpuUsage();
    t0 = performance.now();
  }, warmupMs);
  // Writers on distinct pools: writer w takes pools w, w+writers, … in turn.
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      let mine = w;
      while (performance.now() < end) {
        const pool = pools[layout === "hot" ? 0 : mine % pools.length] as string;
        mine += writers;
        const expectedVersion = versions.get(pool) as number;
        const t = performance.now();
        const v = await journal.append({ pool, shard: index, epoch: 0, expectedVersion }, payload);
        versions.set(pool, v);
        if (measuring) {
          latencies.push(performance.now() - t);
          appends++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  h.disable();
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  await journal.close();
  const result: ChildResult = {
    appends,
    events: appends * eventsPerAppend,
    seconds: elapsed,
    latenciesMs: latencies,
    loopDelayP99Ms: Math.max(0, h.percentile(99) / 1e6 - 1),
    loopDelayMaxMs: Math.max(0, h.max / 1e6 - 1),
    loopUtilization: elu.utilization,
    cpuMsPerAppend: (cpu.user + cpu.system) / 1000 / Math.max(1, appends),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function runCell(
  impl: Impl,
  layout: Layout,
  concurrency: number,
  processes: number,
  seconds: number,
): Promise<CellFigure> {
  const dir = mkdtempSync(join(tmpdir(), "berth-sqlite-bench-"));
  const db = join(dir, "journal.db");
  try {
    // Create the file first, so the children do not race on the schema.
    const mod = (await import(pathToFileURL(impl.path).href)) as JournalModule;
    await mod.SqliteJournal.open(db).close();
    const children = Array.from({ length: processes }, (_, i) => {
      const proc = spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          thisFile,
          "--child",
          impl.path,
          JSON.stringify(impl.options),
          db,
          layout,
          String(concurrency),
          String(i),
          String(seconds),
        ],
        { cwd: repoRoot, stdio: ["pipe", "pipe", "inherit"] },
      );
      const lines = createInterface({ input: proc.stdout });
      let onReady = () => {};
      const ready = new Promise<void>((r) => {
        onReady = r;
      });
      const result = new Promise<ChildResult>((resolve, reject) => {
        lines.on("line", (line) => {
          if (line === "ready") onReady();
          else if (line.startsWith("{")) resolve(JSON.parse(line) as ChildResult);
        });
        proc.on("exit", (code) => reject(new Error(`bench child exited with code ${code}`)));
      });
      return { proc, ready, result };
    });
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.proc.stdin.write("go\n");
    const results = await Promise.all(children.map((c) => c.result));
    const all = results.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
    const seconds_ = Math.max(...results.map((r) => r.seconds));
    const appends = results.reduce((a, r) => a + r.appends, 0);
    const events = results.reduce((a, r) => a + r.events, 0);
    return {
      impl: impl.name,
      layout,
      concurrency,
      processes,
      appendsPerSecond: appends / seconds_,
      eventsPerSecond: events / seconds_,
      meanMs: all.reduce((a, b) => a + b, 0) / Math.max(1, all.length),
      p99Ms: quantile(all, 0.99),
      loopDelayP99Ms: Math.max(...results.map((r) => r.loopDelayP99Ms)),
      loopDelayMaxMs: Math.max(...results.map((r) => r.loopDelayMaxMs)),
      loopUtilization: Math.max(...results.map((r) => r.loopUtilization)),
      cpuMsPerAppend: results.reduce((a, r) => a + r.cpuMsPerAppend * r.appends, 0) / appends,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs every cell for every implementation, interleaved, and returns the figures. */
export async function runSqliteJournalBench(options: {
  impls: readonly Impl[];
  seconds: number;
  rounds: number;
  concurrencies: readonly number[];
  processes: readonly number[];
  log?: (line: string) => void;
}): Promise<CellFigure[]> {
  const figures: CellFigure[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    for (const processes of options.processes) {
      for (const layout of ["hot", "1000 pools"] as const) {
        for (const c of options.concurrencies) {
          for (const impl of options.impls) {
            const f = await runCell(impl, layout, c, processes, options.seconds);
            figures.push(f);
            options.log?.(
              `round ${round} ${impl.name} ${layout} c=${c} ×${processes}: ${f.appendsPerSecond.toFixed(0)} appends/s, ${f.eventsPerSecond.toFixed(0)} events/s, mean ${f.meanMs.toFixed(2)} ms, p99 ${f.p99Ms.toFixed(2)} ms, loop delay p99 ${f.loopDelayP99Ms.toFixed(1)} / max ${f.loopDelayMaxMs.toFixed(1)} ms, loop busy ${(100 * f.loopUtilization).toFixed(0)}%, CPU ${f.cpuMsPerAppend.toFixed(3)} ms/append`,
            );
          }
        }
      }
    }
  }
  return figures;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === "--child") {
    await child(process.argv.slice(3));
  } else {
    const { values } = parseArgs({
      options: {
        impl: { type: "string", multiple: true },
        seconds: { type: "string", default: "2" },
        rounds: { type: "string", default: "1" },
        concurrency: { type: "string", default: "1,8,64" },
        processes: { type: "string", default: "1,3" },
      },
    });
    const impls = (values.impl ?? []).map((s) => {
      const m = /^([^=]+)=([^;]*)(?:;(.*))?$/.exec(s);
      if (m === null) throw new Error(`--impl takes NAME=PATH[;key=value,…], got ${s}`);
      const options: Record<string, unknown> = {};
      for (const kv of (m[3] ?? "").split(",").filter((x) => x !== "")) {
        const [k, v] = kv.split("=");
        options[k as string] = Number.isNaN(Number(v)) ? v : Number(v);
      }
      return { name: m[1] as string, path: m[2] === "" ? defaultImpl : (m[2] as string), options };
    });
    if (impls.length === 0 || !impls.some((i) => i.path === defaultImpl)) {
      impls.push({ name: "this", path: defaultImpl, options: {} });
    }
    const figures = await runSqliteJournalBench({
      impls,
      seconds: Number(values.seconds),
      rounds: Number(values.rounds),
      concurrencies: values.concurrency.split(",").map(Number),
      processes: values.processes.split(",").map(Number),
      log: (line) => console.log(`[sqlite-journal-bench] ${line}`),
    });
    console.table(
      figures.map((f) => ({
        impl: f.impl,
        layout: f.layout,
        c: f.concurrency,
        procs: f.processes,
        "appends/s": f.appendsPerSecond.toFixed(0),
        "events/s": f.eventsPerSecond.toFixed(0),
        "mean ms": f.meanMs.toFixed(2),
        "p99 ms": f.p99Ms.toFixed(2),
        "loop p99 ms": f.loopDelayP99Ms.toFixed(1),
        "loop max ms": f.loopDelayMaxMs.toFixed(1),
        "loop busy": `${(100 * f.loopUtilization).toFixed(0)}%`,
        "CPU ms/append": f.cpuMsPerAppend.toFixed(3),
      })),
    );
  }
}
