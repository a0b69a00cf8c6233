// `npm run bench:k8s`: Berth in Kubernetes mode on a real kube-apiserver (built by
// testing/src/kubernetes; every Berth process on the host, as operator.k8s.int.test.ts
// runs them), measuring
//   1. failover after kill -9 of one of the workers under load (kubernetes-failover.ts);
//   2. SIGTERM of one worker under load: failed calls and hand-off time;
//   3. N CapacityPools created at once (kubernetes-pools.ts): time until all Ready,
//      the operator's and kube-apiserver's memory, the writes the operator causes.
// Scenarios 1–2 share one system; 3 gets a fresh control plane and system. Every
// table is printed with the Lease and operator settings it ran with, and the
// machine's state; --json FILE writes everything for docs/benchmarks.md. Progress
// lines go to stderr. Timings on a shared machine vary: this reports, never asserts.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { goMissingReason } from "@berth/testing/kubernetes";
import {
  type KillRun,
  newLoad,
  type ProbeResult,
  percentiles,
  runKills,
  runTerms,
  type TermRun,
  verdict,
} from "./kubernetes-failover.js";
import {
  apiLatencyOf,
  apiWritesOf,
  createLoadPools,
  loadPools,
  type ManyPoolsResult,
  mib,
  runManyPools,
} from "./kubernetes-pools.js";
import {
  describeSettings,
  type KubernetesSystem,
  type SystemSettings,
  startKubernetesSystem,
} from "./kubernetes-system.js";

const { values: args } = parseArgs({
  options: {
    scenarios: { type: "string", default: "kill,term,pools" },
    kills: { type: "string", default: "5" },
    terms: { type: "string", default: "3" },
    workers: { type: "string", default: "3" },
    shards: { type: "string", default: "256" },
    "load-pools": { type: "string", default: "192" },
    concurrency: { type: "string", default: "96" },
    rate: { type: "string", default: "150" },
    "call-deadline-ms": { type: "string", default: "2000" },
    "operation-deadline-ms": { type: "string", default: "30000" },
    "warmup-ms": { type: "string", default: "3000" },
    "cooldown-ms": { type: "string", default: "2000" },
    "lease-duration-ms": { type: "string", default: "2000" },
    "lease-renew-ms": { type: "string", default: "500" },
    "hand-off-timeout-ms": { type: "string", default: "20000" },
    // The operator's own defaults (client-go's): shorter ones flap under CPU starvation.
    "operator-lease-duration-ms": { type: "string", default: "15000" },
    "operator-renew-deadline-ms": { type: "string", default: "10000" },
    "operator-retry-period-ms": { type: "string", default: "2000" },
    "max-moves": { type: "string", default: "32" },
    "membership-stable-ms": { type: "string", default: "1000" },
    "status-writes-per-second": { type: "string", default: "50" },
    "gossip-pull-ms": { type: "string", default: "1000" },
    "many-pools": { type: "string", default: "10000" },
    "many-batch": { type: "string", default: "500" },
    "many-parallel": { type: "string", default: "2" },
    "many-timeout-ms": { type: "string", default: "1800000" },
    "quiet-ms": { type: "string", default: "30000" },
    json: { type: "string" },
    "keep-logs": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(`usage: npm run bench:k8s -- [--scenarios kill,term,pools] [--json out.json] [--keep-logs]
  scenarios 1-2 (one system): --kills 5 --terms 3 --workers 3 --shards 256
      --load-pools 192 --concurrency 96 --rate 150 (reserves/s, paced)
      --call-deadline-ms 2000 --operation-deadline-ms 30000 --warmup-ms 3000 --cooldown-ms 2000
  worker: --lease-duration-ms 2000 --lease-renew-ms 500 --hand-off-timeout-ms 20000
  operator: --operator-lease-duration-ms 15000 --operator-renew-deadline-ms 10000
      --operator-retry-period-ms 2000 --max-moves 32 --status-writes-per-second 50
      --membership-stable-ms 1000
  gateway: --gossip-pull-ms 1000
  scenario 3 (fresh system): --many-pools 10000 --many-batch 500 --many-parallel 2
      --many-timeout-ms 1800000 --quiet-ms 30000`);
  process.exit(0);
}
const int = (flag: keyof typeof args, min = 0): number => {
  const n = Number(args[flag]);
  if (!Number.isInteger(n) || n < min) {
    console.error(`bench:k8s: --${flag} must be an integer ≥ ${min}`);
    process.exit(2);
  }
  return n;
};
const scenarios = new Set(String(args.scenarios).split(","));
for (const s of scenarios) {
  if (!["kill", "term", "pools"].includes(s)) {
    console.error(`bench:k8s: unknown scenario ${s} (kill, term, pools)`);
    process.exit(2);
  }
}
const settings: SystemSettings = {
  workers: int("workers", 1),
  shards: int("shards", 1),
  quorum: Math.floor(int("workers", 1) / 2) + 1,
  workerLeaseDurationMs: int("lease-duration-ms", 1000),
  workerLeaseRenewMs: int("lease-renew-ms", 100),
  handOffTimeoutMs: int("hand-off-timeout-ms"),
  operatorLeaseDurationMs: int("operator-lease-duration-ms", 1000),
  operatorRenewDeadlineMs: int("operator-renew-deadline-ms", 500),
  operatorRetryPeriodMs: int("operator-retry-period-ms", 100),
  maxMoves: int("max-moves", 1),
  membershipStableMs: int("membership-stable-ms"),
  statusWritesPerSecond: int("status-writes-per-second", 1),
  gatewayGossipPullMs: int("gossip-pull-ms", 10),
};

const progress = (msg: string): void => {
  process.stderr.write(`[bench:k8s ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

interface Machine {
  readonly nproc: number;
  readonly cpu: string;
  readonly freeGiB: number;
  readonly totalGiB: number;
  readonly load: readonly number[];
  readonly node: string;
}
const machine = (): Machine => ({
  nproc: cpus().length,
  cpu: cpus()[0]?.model ?? "?",
  freeGiB: Number((freemem() / 2 ** 30).toFixed(1)),
  totalGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
  load: loadavg().map((l) => Number(l.toFixed(2))),
  node: process.version,
});
const describeMachine = (m: Machine) =>
  `${m.nproc} cores (${m.cpu}), ${m.freeGiB} of ${m.totalGiB} GiB free, load ${m.load.join(" ")}, node ${m.node}`;

const fmt = (ms: number | undefined): string =>
  ms === undefined || Number.isNaN(ms) ? "-" : (ms / 1000).toFixed(2);

/** "worker-1 0.62, berth-operator 0.71" */
function gapText(gaps: Record<string, number>): string {
  return Object.entries(gaps)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(", ");
}

function reportKills(runs: readonly KillRun[], rates: WriteRates): Record<string, unknown> {
  console.log("\n== 1. Failover after kill -9 of one worker, under load ==");
  console.log("Seconds after the SIGKILL (per run):");
  console.table(
    runs.map((r) => {
      const p = percentiles(r.firstAnswerMs);
      return {
        victim: r.victim,
        "shards/pools": `${r.deadShards}/${r.deadPools}`,
        "last renewTime": fmt(r.lastRenewTimeMs),
        "Lease expires": fmt(r.leaseExpiresMs),
        "take-over published": fmt(r.takeoverPublishedMs),
        waves: r.takeoverPublications,
        "last wave": fmt(r.lastTakeoverPublishedMs),
        "owners saw map": fmt(r.ownersSawMapMs),
        "gateway saw map": fmt(r.gatewaySawMapMs),
        "shards recovered": `${fmt(r.firstShardRecoveredMs)}–${fmt(r.lastShardRecoveredMs)}`,
        "pool p50": fmt(p.p50),
        "pool p99": fmt(p.p99),
        "pool max": fmt(p.max),
        "on client retry": r.firstAnswerOnClientRetry,
        "after shard served p50/max": `${fmt(percentiles(r.afterRecoveryMs).p50)}/${fmt(percentiles(r.afterRecoveryMs).max)}`,
        unanswered: r.unanswered,
      };
    }),
  );
  const all = runs.flatMap((r) => r.firstAnswerMs);
  const p = percentiles(all);
  const med = (f: (r: KillRun) => number | undefined) => {
    const xs = runs.map(f).filter((x): x is number => x !== undefined);
    return xs.length ? percentiles(xs).p50 : undefined;
  };
  const timeline = {
    "victim's last renewTime": med((r) => r.lastRenewTimeMs),
    "Lease expiry by observation (bench's last sighting + duration)": med((r) => r.leaseExpiresMs),
    "operator published the take-over": med((r) => r.takeoverPublishedMs),
    "last take-over wave published": med((r) => r.lastTakeoverPublishedMs),
    "bench's watch saw the map": med((r) => r.benchSawMapMs),
    "new owners saw the map (last of them)": med((r) => r.ownersSawMapMs),
    "gateway saw the map": med((r) => r.gatewaySawMapMs),
    "first shard recovered": med((r) => r.firstShardRecoveredMs),
    "last shard recovered": med((r) => r.lastShardRecoveredMs),
    "per-shard recovery (fence + load), median": med((r) => r.shardRecoveryMedianMs),
    "per-shard recovery, max": med((r) => r.shardRecoveryMaxMs),
    "pool answers, after its shard was served, p50": percentiles(
      runs.flatMap((r) => r.afterRecoveryMs),
    ).p50,
    "pool answers, after its shard was served, max": percentiles(
      runs.flatMap((r) => r.afterRecoveryMs),
    ).max,
    "pool answers again, p50": p.p50,
    "pool answers again, p99": p.p99,
    "pool answers again, max": p.max,
  };
  console.log(
    `Over ${runs.length} kills, ${all.length} pools (${runs.reduce((n, r) => n + r.unanswered, 0)} unanswered): first answer after the kill p50 ${fmt(p.p50)} s, p99 ${fmt(p.p99)} s, max ${fmt(p.max)} s`,
  );
  console.log("Timeline, median over the kills (seconds after the SIGKILL):");
  console.table(Object.entries(timeline).map(([step, ms]) => ({ step, s: fmt(ms) })));
  console.log("Correctness after each run and failed calls during it:");
  console.table(
    runs.map((r) => ({
      victim: r.victim,
      reserves: r.reserves,
      ledger: verdict(r.verification),
      "failed calls": Object.entries(r.failures)
        .map(([k, n]) => `${n} ${k}`)
        .join(", "),
      "re-settle s": fmt(r.resettleMs),
      "longest renewal gap s": gapText(r.renewalGapsMs),
      "leader changes": r.leaderChanges,
    })),
  );
  console.log("The leading operator and CPU use (cores) from the kill to the run's end:");
  console.table(probeRows(runs));
  console.log(
    `Writes during scenario 1 (${rates.seconds.toFixed(0)} s, load included): operator CapacityPool status writes ${rates.poolStatusWrites}/s; kube-apiserver mutating requests/s:`,
  );
  console.table(rates.apiServer);
  return { runs, pooled: p, timeline };
}

/** The operator probe and CPU of each run, as table rows. */
function probeRows(runs: readonly { victim: string; probe: ProbeResult }[]) {
  return runs.map((r) => ({
    victim: r.victim,
    "op queue max": r.probe.queueMax,
    "op event-loop lag max ms": r.probe.leaderLagMaxMs,
    "ShardMap reconciles (mean ms, all ≤ ms)": `${r.probe.shardMapReconciles.count} (${r.probe.shardMapReconciles.meanMs}, ${r.probe.shardMapReconciles.maxLeMs ?? "-"})`,
    "pool reconciles": r.probe.poolReconciles,
    "CPU, cores": Object.entries(r.probe.cpuCores)
      .map(([k, v]) => `${k} ${v}`)
      .join(", "),
  }));
}

function reportTerms(runs: readonly TermRun[]): Record<string, unknown> {
  console.log("\n== 2. SIGTERM of one worker under load ==");
  console.table(
    runs.map((r) => ({
      victim: r.victim,
      shards: r.shards,
      "first drain published s": fmt(r.firstDrainPublishedMs),
      "all moved s": fmt(r.allMovedMs),
      "all served s": fmt(r.allServingMs),
      "exited s": fmt(r.exitedMs),
      exit: r.exitCode,
      "failed calls": r.failedCalls,
      reserves: r.reserves,
      "reserve p50/p99/max ms": `${r.latencyMs.p50}/${r.latencyMs.p99}/${r.latencyMs.max}`,
      ledger: verdict(r.verification),
      "longest renewal gap s": gapText(r.renewalGapsMs),
      "leader changes": r.leaderChanges,
    })),
  );
  console.log("The leading operator and CPU use (cores) from the SIGTERM to the run's end:");
  console.table(probeRows(runs));
  for (const r of runs) {
    if (r.failedCalls > 0) console.log(`  ${r.victim}: ${JSON.stringify(r.failures)}`);
    console.log(`  ${r.victim}: the operator published ${r.publications.join("; ")}`);
  }
  return { runs };
}

function reportPools(r: ManyPoolsResult): void {
  console.log(`\n== 3. ${r.pools} CapacityPools created at once ==`);
  console.table({
    "kubectl create": `${fmt(r.createMs)} s (${r.pools / r.batch} files of ${r.batch}, ${r.parallel} at a time)`,
    "first status written": `${fmt(r.firstStatusMs)} s`,
    "Ready p50 / p90 / p99": `${fmt(r.readyMs.p50)} / ${fmt(r.readyMs.p90)} / ${fmt(r.readyMs.p99)} s`,
    "all Ready":
      r.allReadyMs === undefined ? `timed out (${r.readyCount} Ready)` : `${fmt(r.allReadyMs)} s`,
    "operator (leader) RSS": `${mib(r.operator.startRss)} MiB before, peak ${mib(r.operator.hwm)} MiB (VmHWM), ${mib(r.operator.endRss)} MiB after`,
    "operator (leader) V8 heap used after": `${mib(r.operator.endHeapUsed)} MiB`,
    "operator (standby) peak RSS": `${mib(r.standbyHwm)} MiB`,
    "kube-apiserver RSS": `${mib(r.apiServer.startRss)} MiB before, peak ${mib(r.apiServer.hwm)} MiB (VmHWM), ${mib(r.apiServer.endRss)} MiB after`,
    "etcd RSS": `peak ${mib(r.etcd.hwm)} MiB, ${mib(r.etcd.endRss)} MiB after`,
    "operator status writes": `${r.statusWrites.total} (${r.statusWrites.meanPerSecond.toFixed(1)}/s mean, ${r.statusWrites.peakPerSecond.toFixed(1)}/s peak over 5 s)`,
    "kube-apiserver writes": `${Object.values(r.apiWrites).reduce((a, b) => a + b, 0)} (${r.apiWritesPerSecond.toFixed(1)}/s) until all Ready`,
    "shard changes meanwhile": JSON.stringify(r.shardChanges),
  });
  console.log("kube-apiserver mutating requests from the first create until all Ready:");
  console.table(
    Object.entries(r.apiWrites)
      .sort((a, b) => b[1] - a[1])
      .map(([request, n]) => ({ request, n })),
  );
  console.log(`Mutating requests per second in the ${r.quietSeconds} s after all were Ready:`);
  console.table(
    Object.entries(r.quietWritesPerSecond).map(([request, n]) => ({
      request,
      "per s": n.toFixed(2),
    })),
  );
}

async function main(): Promise<void> {
  const skip = goMissingReason();
  if (skip) {
    console.error(`bench:k8s: cannot run without the Kubernetes binaries: ${skip}`);
    process.exit(2);
  }
  const started = machine();
  progress(`machine: ${describeMachine(started)}`);
  for (const [k, v] of Object.entries(describeSettings(settings))) progress(`setting ${k}: ${v}`);
  const dir = mkdtempSync(join(tmpdir(), "berth-bench-k8s-"));
  progress(`logs in ${dir}`);
  const out: Record<string, unknown> = {
    at: new Date().toISOString(),
    command: `npm run bench:k8s -- ${process.argv.slice(2).join(" ")}`.trim(),
    machine: { start: started },
    settings,
    load: {},
  };
  let failed = false;
  try {
    if (scenarios.has("kill") || scenarios.has("term")) {
      const pools = loadPools(int("load-pools", 1));
      const load = {
        pools,
        concurrency: int("concurrency", 1),
        ratePerSecond: int("rate", 1),
        callDeadlineMs: int("call-deadline-ms", 1),
        operationDeadlineMs: int("operation-deadline-ms", 1),
        warmupMs: int("warmup-ms"),
        cooldownMs: int("cooldown-ms"),
      };
      out.load = {
        ...load,
        pools: pools.length,
        smallPools: pools.filter((p) => p.capacity < 100).length,
      };
      progress(
        `load: ${pools.length} pools (every third capacity 12), ${load.concurrency} callers, ${load.ratePerSecond} reserves/s, call deadline ${load.callDeadlineMs} ms, operation deadline ${load.operationDeadlineMs} ms`,
      );
      progress("starting the control plane and the system for scenarios 1-2");
      const t0 = Date.now();
      const system = await startKubernetesSystem({
        settings,
        dir: join(dir, "failover"),
        log: progress,
      });
      running.add(system);
      try {
        progress(`system settled in ${fmt(Date.now() - t0)} s; creating ${pools.length} pools`);
        await createLoadPools(system, pools, join(dir, "failover", "pools"));
        progress("load pools Ready");
        const client = newLoad(system, load);
        try {
          if (scenarios.has("kill")) {
            out.machine = { ...(out.machine as object), kill: machine() };
            const writes = await writeRates(system);
            const runs = await runKills(system, client, load, int("kills", 1), progress);
            const rates = await writes();
            out.kill = { machineAfter: machine(), writes: rates, ...reportKills(runs, rates) };
            if (runs.some((r) => verdict(r.verification).startsWith("FAILED"))) failed = true;
          }
          if (scenarios.has("term")) {
            out.machine = { ...(out.machine as object), term: machine() };
            const runs = await runTerms(system, client, load, int("terms", 1), progress);
            out.term = { machineAfter: machine(), ...reportTerms(runs) };
            if (runs.some((r) => verdict(r.verification).startsWith("FAILED"))) failed = true;
          }
        } finally {
          client.close();
        }
      } finally {
        await stopSystem(system);
      }
    }
    if (scenarios.has("pools")) {
      const count = int("many-pools", 1);
      progress(`starting a fresh control plane and system for scenario 3 (${count} pools)`);
      const system = await startKubernetesSystem({
        settings,
        dir: join(dir, "pools"),
        log: progress,
      });
      running.add(system);
      try {
        out.machine = { ...(out.machine as object), pools: machine() };
        const r = await runManyPools(system, {
          count,
          batch: int("many-batch", 1),
          parallel: int("many-parallel", 1),
          timeoutMs: int("many-timeout-ms", 1),
          quietMs: int("quiet-ms"),
          log: progress,
        });
        reportPools(r);
        out.pools = { machineAfter: machine(), ...r };
      } finally {
        await stopSystem(system);
      }
    }
  } finally {
    const ended = machine();
    console.log(`\nMachine at the start: ${describeMachine(started)}`);
    console.log(`Machine at the end:   ${describeMachine(ended)}`);
    console.log("Settings:");
    console.table(describeSettings(settings));
    out.machine = { ...(out.machine as object), end: ended };
    if (args.json) writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
    if (args["keep-logs"] || failed) progress(`logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  if (failed) process.exitCode = 1;
}

/** Starts counting writes; the returned function gives the rates since (per second). */
async function writeRates(system: KubernetesSystem): Promise<() => Promise<WriteRates>> {
  const status = async () => {
    let n = 0;
    for (const p of system.operators) {
      const m = await p.metrics().catch(() => "");
      for (const x of m.matchAll(
        /^berth_operator_status_writes_total\{[^}]*resource="capacitypool"[^}]*\} (\S+)$/gm,
      ))
        n += Number(x[1]);
    }
    return n;
  };
  const t0 = Date.now();
  const s0 = await status();
  const m0 = await system.apiServerMetrics();
  const w0 = apiWritesOf(m0);
  const l0 = apiLatencyOf(m0);
  return async () => {
    const seconds = (Date.now() - t0) / 1000;
    const s1 = await status();
    const m1 = await system.apiServerMetrics();
    const w1 = apiWritesOf(m1);
    const l1 = apiLatencyOf(m1);
    const apiServer: Record<string, { perSecond: number; serverMeanMs: number }> = {};
    for (const [k, v] of Object.entries(w1)) {
      const d = v - (w0[k] ?? 0);
      if (d <= 0) continue;
      const n = (l1[k]?.count ?? 0) - (l0[k]?.count ?? 0);
      const sum = (l1[k]?.sum ?? 0) - (l0[k]?.sum ?? 0);
      apiServer[k] = {
        perSecond: Number((d / seconds).toFixed(2)),
        serverMeanMs: n > 0 ? Number(((1000 * sum) / n).toFixed(1)) : Number.NaN,
      };
    }
    return { seconds, poolStatusWrites: Number(((s1 - s0) / seconds).toFixed(2)), apiServer };
  };
}

/** Write requests per second over a scenario. */
interface WriteRates {
  readonly seconds: number;
  /** The operators' CapacityPool status writes. */
  readonly poolStatusWrites: number;
  /** kube-apiserver's mutating requests by "VERB resource[/subresource]": rate, its own mean time. */
  readonly apiServer: Record<string, { perSecond: number; serverMeanMs: number }>;
}

const running = new Set<KubernetesSystem>();

async function stopSystem(system: KubernetesSystem): Promise<void> {
  progress("stopping the system and the control plane");
  await system.stop();
  running.delete(system);
}

// Ctrl-C: the Berth processes would stop on their own once this process is gone, but an
// operator whose kube-apiserver vanished first may hang in its graceful stop; kill all.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    progress(`${signal}: killing the Berth processes and stopping the control plane`);
    const systems = [...running];
    for (const s of systems) {
      for (const p of [...s.operators, ...s.workers, s.gateway]) void p.stop("SIGKILL");
    }
    void Promise.all(systems.map((s) => s.cp.stop())).finally(() => process.exit(130));
  });
}

await main();
