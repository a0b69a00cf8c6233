// Scenarios 1 and 2 of `npm run bench:k8s`, on one running system with its pools:
//
// 1. kill -9 of one worker under load: per pool the killed worker owned, the time
//    from the kill to the first Reserve the pool answered again (ok, or out of
//    capacity: either is the new owner's decision); then the killed worker is started
//    again and the map left to settle before the next run. Beside it, a timeline
//    from the processes' own JSON logs and the bench's watches: when the bench last
//    saw the victim's Lease renewed (so when it expires by observation), when the
//    operator published the take-over, when the new owners and the gateway saw that
//    revision, when the new owners reported the shards recovered.
// 2. SIGTERM of one worker under load: every failed client call (goal: none) and
//    the time until the map names other owners for all its shards and they serve
//    them, and until the process exited.
// After every run the load stops, unresolved operations are resolved, and the ledger
// is checked against GetPool of every pool (see kubernetes-load.ts).
import { shardOf } from "@berth/proto";
import type { HostProcess } from "@berth/testing/kubernetes";
import { until } from "@berth/testing/kubernetes";
import {
  ClientLoad,
  type LoadPool,
  type ReserveAnswer,
  type Verification,
} from "./kubernetes-load.js";
import {
  type KubernetesSystem,
  type LogLine,
  logLinesSince,
  type ShardMapItem,
} from "./kubernetes-system.js";
import { histogramDelta, histogramTotals, processCpuSeconds } from "./probes.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Load settings shared by both scenarios. */
export interface FailoverLoad {
  readonly pools: readonly LoadPool[];
  readonly concurrency: number;
  readonly ratePerSecond: number;
  readonly callDeadlineMs: number;
  readonly operationDeadlineMs: number;
  /** Load before the fault. */
  readonly warmupMs: number;
  /** Load after the last pool answered again (kill) or the worker exited (SIGTERM). */
  readonly cooldownMs: number;
}

/** What one kill measured; times are ms after the kill. */
export interface KillRun {
  readonly run: number;
  readonly victim: string;
  readonly deadShards: number;
  readonly deadPools: number;
  /** Per dead pool that answered: ms from the kill to its first answer. */
  readonly firstAnswerMs: readonly number[];
  /** Of those first answers, how many came on a client retry (the client's call had timed out). */
  readonly firstAnswerOnClientRetry: number;
  /** Per dead pool: ms from its shard's new owner logging it served to the pool's first answer. */
  readonly afterRecoveryMs: readonly number[];
  /** The leading operator and every process's CPU, from the kill to the run's end. */
  readonly probe: ProbeResult;
  /** Longest gap between two observed renewals of every other Lease during the run. */
  readonly renewalGapsMs: Record<string, number>;
  /** Leadership lost/gained lines the operators logged during the run. */
  readonly leaderChanges: number;
  readonly unanswered: number;
  /** The victim's Lease as the bench last saw it renewed, plus its duration. */
  readonly leaseExpiresMs: number | undefined;
  /** The renewTime the victim last wrote (its clock = this host's), relative to the kill. */
  readonly lastRenewTimeMs: number | undefined;
  readonly takeoverPublishedMs: number | undefined;
  /** Last take-over publication (several when --max-moves < the dead shards). */
  readonly lastTakeoverPublishedMs: number | undefined;
  readonly takeoverPublications: number;
  readonly benchSawMapMs: number | undefined;
  readonly ownersSawMapMs: number | undefined;
  readonly gatewaySawMapMs: number | undefined;
  readonly firstShardRecoveredMs: number | undefined;
  readonly lastShardRecoveredMs: number | undefined;
  /** Median/max of the per-shard recovery (fence + load) durations the owners logged. */
  readonly shardRecoveryMedianMs: number | undefined;
  readonly shardRecoveryMaxMs: number | undefined;
  /** Failed calls during the run, by method and code/reason. */
  readonly failures: Record<string, number>;
  readonly reserves: number;
  readonly verification: Verification;
  /** Time for the restarted victim to get its shards back (map settled). */
  readonly resettleMs: number;
}

/** What one SIGTERM measured; times are ms after the signal. */
export interface TermRun {
  readonly run: number;
  readonly victim: string;
  readonly shards: number;
  readonly firstDrainPublishedMs: number | undefined;
  /** The map names other owners for every shard of the victim. */
  readonly allMovedMs: number | undefined;
  /** …and the new owners serve them (movingShards 0). */
  readonly allServingMs: number | undefined;
  readonly exitedMs: number | undefined;
  readonly exitCode: number | null;
  /** Failed calls during the run (SIGTERM → cooldown end), by method and code/reason. */
  readonly failures: Record<string, number>;
  readonly failedCalls: number;
  readonly reserves: number;
  /** Reserve latency during the hand-off window, p50/p99/max ms. */
  readonly latencyMs: { p50: number; p99: number; max: number };
  /** Longest gap between two observed renewals of every other Lease during the run. */
  readonly renewalGapsMs: Record<string, number>;
  /** Leadership lost/gained lines the operators logged during the run. */
  readonly leaderChanges: number;
  /** What the leader published, in order: "revision: changes". */
  readonly publications: readonly string[];
  /** The leading operator and every process's CPU, from the SIGTERM to the run's end. */
  readonly probe: ProbeResult;
  readonly verification: Verification;
  readonly resettleMs: number;
}

interface MapSighting {
  readonly at: number;
  readonly status: ShardMapItem["status"];
}

/** The bench's watch of the ShardMap and the worker Leases, with the time of every change. */
class Watches {
  readonly maps: MapSighting[] = [];
  /** Lease name → epoch ms the bench last saw its renewTime change. */
  readonly renewed = new Map<string, number>();
  /** Lease name → every time the bench saw its renewTime change. */
  readonly renewals = new Map<string, number[]>();
  readonly #renewTime = new Map<string, string | undefined>();
  readonly #off: (() => void)[] = [];

  constructor(system: KubernetesSystem) {
    this.#off.push(
      system.shardMaps.onChange((e) => {
        if (e.type !== "deleted") this.maps.push({ at: Date.now(), status: e.object.status });
      }),
      system.leases.onChange((e) => {
        const name = e.object.metadata?.name;
        if (name === undefined || e.type === "deleted") return;
        const t = e.object.spec?.renewTime;
        if (t !== this.#renewTime.get(name)) {
          this.#renewTime.set(name, t);
          const now = Date.now();
          this.renewed.set(name, now);
          const list = this.renewals.get(name) ?? [];
          list.push(now);
          this.renewals.set(name, list);
        }
      }),
    );
  }

  /**
   * The longest time between two renewals of each Lease seen in [from, to] (the gap
   * up to `to` included), except `skip`'s: how close a live member came to expiring.
   */
  renewalGaps(from: number, to: number, skip: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, times] of this.renewals) {
      if (name === skip) continue;
      let last = times.filter((t) => t <= from).pop() ?? from;
      let max = 0;
      for (const t of times) {
        if (t <= from || t > to) continue;
        max = Math.max(max, t - last);
        last = t;
      }
      out[name] = Math.max(max, to - last);
    }
    return out;
  }

  /** First sighting at or after `since` satisfying `test`. */
  firstMap(since: number, test: (s: NonNullable<ShardMapItem["status"]>) => boolean) {
    return this.maps.find((m) => m.at >= since && m.status !== undefined && test(m.status));
  }

  close(): void {
    for (const off of this.#off) off();
  }
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
}

/** p50 / p99 / max of `xs`. */
export function percentiles(xs: readonly number[]): { p50: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: quantile(s, 0.5), p99: quantile(s, 0.99), max: s[s.length - 1] ?? Number.NaN };
}

function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  return quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
}

/** What {@link RunProbe} saw during one run. */
export interface ProbeResult {
  /** Largest berth_operator_queue_depth of the leader (set at each reconcile's start). */
  readonly queueMax: number;
  /** Largest event-loop lag of the leader (prom-client's nodejs_eventloop_lag_max_seconds). */
  readonly leaderLagMaxMs: number;
  /** The leader's ShardMap reconciles during the run: count, mean and slowest bucket (ms). */
  readonly shardMapReconciles: { count: number; meanMs: number; maxLeMs: number | undefined };
  readonly poolReconciles: number;
  /** CPU each process used, as a share of one core over the run (0.5 = half a core). */
  readonly cpuCores: Record<string, number>;
}

/** Samples the leading operator every 200 ms and every process's CPU over one run. */
class RunProbe {
  readonly #system: KubernetesSystem;
  readonly #leader: HostProcess | undefined;
  readonly #cpu0 = new Map<string, number | undefined>();
  readonly #t0 = Date.now();
  #metrics0 = "";
  #queueMax = 0;
  #lagMax = 0;
  #running = true;
  #loop: Promise<void> = Promise.resolve();

  private constructor(system: KubernetesSystem, leader: HostProcess | undefined) {
    this.#system = system;
    this.#leader = leader;
    for (const [name, pid] of this.#pids()) this.#cpu0.set(name, processCpuSeconds(pid));
  }

  static async start(system: KubernetesSystem): Promise<RunProbe> {
    const probe = new RunProbe(system, await system.leader());
    probe.#metrics0 = (await probe.#leader?.metrics().catch(() => "")) ?? "";
    probe.#loop = probe.#sample();
    return probe;
  }

  #pids(): [string, number | undefined][] {
    const s = this.#system;
    return [
      ...[...s.operators, ...s.workers, s.gateway].map(
        (p) =>
          [p === this.#leader ? `${p.name} (leader)` : p.name, p.pid] as [
            string,
            number | undefined,
          ],
      ),
      ["kube-apiserver", s.cp.pids().apiServer],
      ["etcd", s.cp.pids().etcd],
      ["bench (client)", process.pid],
    ];
  }

  async #sample(): Promise<void> {
    while (this.#running && this.#leader !== undefined) {
      const m = await this.#leader.metrics().catch(() => "");
      this.#queueMax = Math.max(this.#queueMax, gauge(m, "berth_operator_queue_depth"));
      this.#lagMax = Math.max(this.#lagMax, gauge(m, "nodejs_eventloop_lag_max_seconds"));
      await sleep(200);
    }
  }

  async stop(): Promise<ProbeResult> {
    this.#running = false;
    await this.#loop;
    const seconds = (Date.now() - this.#t0) / 1000;
    const cpuCores: Record<string, number> = {};
    for (const [name, pid] of this.#pids()) {
      const a = processCpuSeconds(pid);
      const b = this.#cpu0.get(name);
      if (a !== undefined && b !== undefined && a >= b) {
        cpuCores[name] = Number(((a - b) / seconds).toFixed(2));
      }
    }
    const m1 = (await this.#leader?.metrics().catch(() => "")) ?? "";
    const shardMap = (text: string) =>
      histogramTotals(
        text
          .split("\n")
          .filter((l) => l.includes('controller="shardmap"'))
          .join("\n"),
        "berth_operator_reconcile_duration_seconds",
      );
    const d = histogramDelta(shardMap(m1), shardMap(this.#metrics0));
    let maxLe: number | undefined;
    for (const [le, n] of [...d.buckets].sort((a, b) => a[0] - b[0])) {
      if (n < d.count) continue;
      maxLe = le;
      break;
    }
    const pools = (text: string) =>
      gaugeSum(text, /^berth_operator_reconciles_total\{controller="pool"[^}]*\} (\S+)$/gm);
    return {
      queueMax: this.#queueMax,
      leaderLagMaxMs: Math.round(this.#lagMax * 1000),
      shardMapReconciles: {
        count: d.count,
        meanMs: d.count > 0 ? Math.round((1000 * d.sum) / d.count) : 0,
        maxLeMs: maxLe === undefined ? undefined : maxLe * 1000,
      },
      poolReconciles: pools(m1) - pools(this.#metrics0),
      cpuCores,
    };
  }
}

function gauge(metrics: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(metrics);
  return m === null ? 0 : Number(m[1]);
}

function gaugeSum(metrics: string, re: RegExp): number {
  let n = 0;
  for (const m of metrics.matchAll(re)) n += Number(m[1]);
  return n;
}

const rel = (at: number | undefined, t0: number) => (at === undefined ? undefined : at - t0);

function firstLine(lines: readonly LogLine[], test: (l: LogLine) => boolean): LogLine | undefined {
  return lines.find(test);
}

/** Runs `kills` kill -9 runs, victims in turn; `log` prints progress. */
export async function runKills(
  system: KubernetesSystem,
  client: ClientLoad,
  load: FailoverLoad,
  kills: number,
  log: (line: string) => void,
): Promise<KillRun[]> {
  const watches = new Watches(system);
  const runs: KillRun[] = [];
  try {
    for (let run = 1; run <= kills; run++) {
      const victim = system.workers[(run - 1) % system.workers.length] as HostProcess;
      await system.settle(`the map to settle before kill ${run}`);
      const runStart = Date.now();
      client.start();
      await sleep(load.warmupMs);
      const map = system.map();
      if (map === undefined) throw new Error("no ShardMap");
      const deadShards = new Set(
        map.shards.filter((s) => s.owner === victim.name).map((s) => s.shard),
      );
      const deadPools = load.pools.filter((p) => deadShards.has(shardOf(p.id, map.shardCount)));
      const renewedAt = watches.renewed.get(victim.name);
      const renewTime = Date.parse(
        String(system.leases.get(`${system.namespace}/${victim.name}`)?.spec?.renewTime ?? ""),
      );
      const probe = await RunProbe.start(system);
      const killAt = Date.now();
      await victim.stop("SIGKILL");
      log(
        `kill ${run}/${kills}: SIGKILL ${victim.name} (owned ${deadShards.size} shards, ${deadPools.length} of the load's pools); waiting for every one of them to answer again`,
      );
      const answered = new Map<string, { ms: number; retries: number }>();
      // An answer the old owner sent just before it died may arrive a moment after
      // the kill; a new owner cannot answer within 250 ms (Lease expiry comes first).
      let scanned = client.answers.length;
      while (scanned > 0 && (client.answers[scanned - 1]?.at ?? 0) >= killAt) scanned--;
      const collect = () => {
        for (; scanned < client.answers.length; scanned++) {
          const a = client.answers[scanned] as ReserveAnswer;
          if (a.at < killAt || (a.sentAt < killAt && a.at < killAt + 250)) continue;
          if (!answered.has(a.pool)) {
            answered.set(a.pool, { ms: a.at - killAt, retries: a.retries });
          }
        }
      };
      const deadIds = new Set(deadPools.map((p) => p.id));
      await until(
        `every pool of ${victim.name} to answer again`,
        () => {
          collect();
          return [...deadIds].every((id) => answered.has(id));
        },
        60_000,
      ).catch((e: unknown) => log(`kill ${run}: ${(e as Error).message}`));
      await sleep(load.cooldownMs);
      await client.stop();
      const runEnd = Date.now();
      const probed = await probe.stop();
      const left = await client.settle();
      const verification = await client.verify();
      const firsts = deadPools
        .map((p) => answered.get(p.id))
        .filter((x): x is { ms: number; retries: number } => x !== undefined);
      const firstAnswerMs = firsts.map((f) => f.ms);
      // The timeline, from logs and watches.
      const opLines = system.operators
        .flatMap((o) => logLinesSince(o.logFile, killAt))
        .filter((l) => l.at <= runEnd)
        .sort((a, b) => a.at - b.at);
      const leaderChanges = opLines.filter(
        (l) => l.event === "operator.leading" || l.event === "operator.not_leading",
      ).length;
      const takeovers = opLines.filter(
        (l) =>
          l.event === "operator.shard_map_published" &&
          typeof l.changes === "object" &&
          l.changes !== null &&
          "taken-over" in l.changes,
      );
      const revision = takeovers[0]?.revision as number | undefined;
      const owners = system.workers.filter((w) => w !== victim);
      const sawAt = (p: HostProcess) =>
        revision === undefined
          ? undefined
          : firstLine(
              logLinesSince(p.logFile, killAt),
              (l) => l.event === "shard_map.followed" && Number(l.revision) >= revision,
            )?.at;
      const ownerSaw = owners.map(sawAt).filter((x): x is number => x !== undefined);
      // From the new owners' own reports (WatchShards), not their logs.
      const ownerIds = new Set(owners.map((w) => w.name));
      const recovered = system.shardReports
        .servedBetween(killAt, runEnd)
        .filter((r) => ownerIds.has(r.worker) && deadShards.has(r.shard));
      const recoveredAt = recovered.map((r) => r.servingAt);
      const recoveryMs = recovered
        .flatMap((r) => (r.recoveringAt === undefined ? [] : [r.servingAt - r.recoveringAt]))
        .sort((a, b) => a - b);
      const shardServedAt = new Map(recovered.map((r) => [r.shard, r.servingAt]));
      // Per pool: its first answer after its shard's new owner logged it serving.
      const afterRecoveryMs = deadPools.flatMap((p) => {
        const a = answered.get(p.id);
        const at = shardServedAt.get(shardOf(p.id, map.shardCount));
        return a === undefined || at === undefined ? [] : [killAt + a.ms - at];
      });
      const benchSaw =
        revision === undefined
          ? undefined
          : watches.firstMap(killAt, (st) => (st.revision ?? 0) >= revision)?.at;
      const failures = Object.fromEntries(client.failuresBetween(killAt, runEnd));
      const p = percentiles(firstAnswerMs);
      const expiresAt = renewedAt === undefined ? undefined : renewedAt + leaseMs(system);
      log(
        `kill ${run}/${kills}: ${firstAnswerMs.length}/${deadPools.length} pools answered again, p50 ${p.p50} ms, max ${p.max} ms; Lease expiry +${rel(expiresAt, killAt)} ms, map seen +${rel(benchSaw, killAt)} ms, shards recovered by +${rel(recoveredAt[recoveredAt.length - 1], killAt)} ms; operator queue ≤ ${probed.queueMax}, event-loop lag ≤ ${probed.leaderLagMaxMs} ms; ledger ${verdict(verification, left)}`,
      );
      const restartAt = Date.now();
      victim.start();
      await system.settle(`${victim.name} to get its shards back after kill ${run}`);
      const resettleMs = Date.now() - restartAt;
      log(`kill ${run}/${kills}: ${victim.name} restarted, map settled in ${resettleMs} ms`);
      runs.push({
        run,
        victim: victim.name,
        deadShards: deadShards.size,
        deadPools: deadPools.length,
        firstAnswerMs,
        firstAnswerOnClientRetry: firsts.filter((f) => f.retries > 0).length,
        afterRecoveryMs,
        unanswered: deadPools.length - firstAnswerMs.length,
        leaseExpiresMs: rel(expiresAt, killAt),
        lastRenewTimeMs: Number.isNaN(renewTime) ? undefined : renewTime - killAt,
        takeoverPublishedMs: rel(takeovers[0]?.at, killAt),
        lastTakeoverPublishedMs: rel(takeovers[takeovers.length - 1]?.at, killAt),
        takeoverPublications: takeovers.length,
        benchSawMapMs: rel(benchSaw, killAt),
        ownersSawMapMs: rel(ownerSaw.length ? Math.max(...ownerSaw) : undefined, killAt),
        gatewaySawMapMs: rel(sawAt(system.gateway), killAt),
        firstShardRecoveredMs: rel(recoveredAt[0], killAt),
        lastShardRecoveredMs: rel(recoveredAt[recoveredAt.length - 1], killAt),
        shardRecoveryMedianMs: median(recoveryMs),
        shardRecoveryMaxMs: recoveryMs[recoveryMs.length - 1],
        probe: probed,
        renewalGapsMs: watches.renewalGaps(runStart, runEnd, victim.name),
        leaderChanges,
        failures,
        reserves: client.answers.filter((a) => a.at >= killAt && a.at < runEnd).length,
        verification,
        resettleMs,
      });
    }
  } finally {
    await client.stop();
    watches.close();
  }
  return runs;
}

/** Runs `terms` SIGTERM runs, victims in turn. */
export async function runTerms(
  system: KubernetesSystem,
  client: ClientLoad,
  load: FailoverLoad,
  terms: number,
  log: (line: string) => void,
): Promise<TermRun[]> {
  const watches = new Watches(system);
  const runs: TermRun[] = [];
  try {
    for (let run = 1; run <= terms; run++) {
      const victim = system.workers[(run - 1) % system.workers.length] as HostProcess;
      await system.settle(`the map to settle before SIGTERM ${run}`);
      const runStart = Date.now();
      client.start();
      await sleep(load.warmupMs);
      const owned = system.map()?.shards.filter((s) => s.owner === victim.name).length ?? 0;
      const probe = await RunProbe.start(system);
      const termAt = Date.now();
      log(`SIGTERM ${run}/${terms}: ${victim.name} (owns ${owned} shards)`);
      const exited = victim.stop("SIGTERM", system.settings.handOffTimeoutMs + 20_000);
      const exitCode = await exited;
      const exitedAt = Date.now();
      await until(
        `the map to move every shard off ${victim.name} and serve them`,
        () => {
          const st = system.mapStatus();
          return (
            st?.shards?.every((s) => s.owner !== victim.name && s.state === "Active") === true &&
            st.movingShards === 0
          );
        },
        60_000,
      ).catch((e: unknown) => log(`SIGTERM ${run}: ${(e as Error).message}`));
      await sleep(load.cooldownMs);
      await client.stop();
      const runEnd = Date.now();
      const probed = await probe.stop();
      const left = await client.settle();
      const verification = await client.verify();
      const moved = watches.firstMap(
        termAt,
        (st) => st.shards?.every((s) => s.owner !== victim.name) === true,
      );
      const serving = watches.firstMap(
        termAt,
        (st) =>
          st.shards?.every((s) => s.owner !== victim.name && s.state === "Active") === true &&
          st.movingShards === 0,
      );
      const leader = await system.leader();
      const drain =
        leader === undefined
          ? undefined
          : firstLine(
              logLinesSince(leader.logFile, termAt),
              (l) =>
                l.event === "operator.shard_map_published" &&
                typeof l.changes === "object" &&
                l.changes !== null &&
                "draining" in l.changes,
            );
      const opLines = system.operators.flatMap((p) => logLinesSince(p.logFile, termAt));
      const leaderChanges = opLines.filter(
        (l) => l.event === "operator.leading" || l.event === "operator.not_leading",
      ).length;
      const publications = opLines
        .filter((l) => l.event === "operator.shard_map_published" && l.at <= runEnd)
        .sort((a, b) => a.at - b.at)
        .map((l) => `+${l.at - termAt} ms r${l.revision} ${JSON.stringify(l.changes)}`);
      const failures = Object.fromEntries(client.failuresBetween(termAt, runEnd));
      const failedCalls = Object.values(failures).reduce((a, b) => a + b, 0);
      // Reserve latency while the shards moved: answers sent from SIGTERM to all serving.
      const windowEnd = serving?.at ?? exitedAt;
      const latencies = client.answers
        .filter((a) => a.sentAt >= termAt && a.sentAt <= windowEnd)
        .map((a) => a.at - a.sentAt);
      const lat = percentiles(latencies);
      log(
        `SIGTERM ${run}/${terms}: ${failedCalls} failed calls; shards moved +${rel(moved?.at, termAt)} ms, served +${rel(serving?.at, termAt)} ms, exited +${exitedAt - termAt} ms (code ${exitCode}); ledger ${verdict(verification, left)}`,
      );
      const restartAt = Date.now();
      victim.start();
      await system.settle(`${victim.name} to get its shards back after SIGTERM ${run}`);
      const resettleMs = Date.now() - restartAt;
      runs.push({
        run,
        victim: victim.name,
        shards: owned,
        firstDrainPublishedMs: rel(drain?.at, termAt),
        allMovedMs: rel(moved?.at, termAt),
        allServingMs: rel(serving?.at, termAt),
        exitedMs: exitedAt - termAt,
        exitCode,
        failures,
        failedCalls,
        reserves: client.answers.filter((a) => a.at >= termAt && a.at < runEnd).length,
        latencyMs: lat,
        renewalGapsMs: watches.renewalGaps(runStart, runEnd, victim.name),
        leaderChanges,
        publications,
        probe: probed,
        verification,
        resettleMs,
      });
    }
  } finally {
    await client.stop();
    watches.close();
  }
  return runs;
}

/** The load (and its ledger) both scenarios share: the pools keep their reservations. */
export function newLoad(system: KubernetesSystem, load: FailoverLoad): ClientLoad {
  return new ClientLoad({
    gateway: system.gatewayGrpc,
    pools: load.pools,
    concurrency: load.concurrency,
    ratePerSecond: load.ratePerSecond,
    callDeadlineMs: load.callDeadlineMs,
    operationDeadlineMs: load.operationDeadlineMs,
    tag: `bench-${Date.now().toString(36)}`,
  });
}

function leaseMs(system: KubernetesSystem): number {
  return Math.ceil(system.settings.workerLeaseDurationMs / 1000) * 1000;
}

/** "ok" or what is wrong with a run's ledger. */
export function verdict(v: Verification, unresolvedAfterSettle = v.unresolved): string {
  const problems = [
    v.mismatched.length ? `${v.mismatched.length} pools differ from the ledger` : "",
    v.oversold.length ? `${v.oversold.length} pools oversold` : "",
    v.falseReplays ? `${v.falseReplays} false replays` : "",
    v.duplicateIds ? `${v.duplicateIds} duplicate reservation ids` : "",
    v.lostReleases ? `${v.lostReleases} acknowledged reservations not found` : "",
    unresolvedAfterSettle ? `${unresolvedAfterSettle} operations unresolved` : "",
  ].filter((x) => x !== "");
  return problems.length === 0
    ? `ok (${v.acknowledgedUnits} units acknowledged = ${v.reservedUnits} reserved, none oversold)`
    : `FAILED: ${problems.join(", ")}`;
}
