// What the benchmark observes besides request rates: CPU time of each process (from
// /proc on Linux) and the group-commit histogram a worker exports on /metrics.
import { readdirSync, readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";

/** CPU seconds (user + system) a process has used so far; undefined when unknown. */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  if (pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command (which may hold spaces) start at ") ".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here (0-based).
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : undefined;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every mainstream Linux build. */
const CLOCK_TICKS = 100;

/** Sum and count of a Prometheus histogram (all label sets added up). */
export interface HistogramTotals {
  readonly sum: number;
  readonly count: number;
  /** Cumulative counts by `le` bound, label sets added up. */
  readonly buckets: ReadonlyMap<number, number>;
}

/** Parses `name`'s _sum, _count and _bucket series out of a Prometheus text exposition. */
export function histogramTotals(text: string, name: string): HistogramTotals {
  let sum = 0;
  let count = 0;
  const buckets = new Map<number, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (!Number.isFinite(value)) continue;
    const rest = line.slice(name.length);
    if (rest.startsWith("_sum")) sum += value;
    else if (rest.startsWith("_count")) count += value;
    else if (rest.startsWith("_bucket")) {
      const le = /le="([^"]+)"/.exec(rest)?.[1];
      if (le === undefined) continue;
      const bound = le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    }
  }
  return { sum, count, buckets };
}

/** The difference of two scrapes of one histogram. */
export function histogramDelta(after: HistogramTotals, before: HistogramTotals): HistogramTotals {
  const buckets = new Map<number, number>();
  for (const [le, n] of after.buckets) buckets.set(le, n - (before.buckets.get(le) ?? 0));
  return { sum: after.sum - before.sum, count: after.count - before.count, buckets };
}

/** The smallest bucket bound holding at least fraction `q` of the observations. */
export function bucketQuantile(h: HistogramTotals, q: number): number | undefined {
  if (h.count <= 0) return undefined;
  const sorted = [...h.buckets].sort((a, b) => a[0] - b[0]);
  for (const [le, n] of sorted) if (n >= q * h.count) return le;
  return undefined;
}

/** Fetches a worker's or gateway's /metrics text; "" when it does not answer. */
export async function scrapeMetrics(httpAddress: string): Promise<string> {
  try {
    const res = await fetch(`http://${httpAddress}/metrics`, { signal: AbortSignal.timeout(5000) });
    return res.ok ? await res.text() : "";
  } catch {
    return "";
  }
}

/** The fields of /proc/PID/stat after the command, 0-based from field 3 (state). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds of a process from /proc (utime + stime), plus with `withReaped` the CPU of
 * its children it has waited for (cutime + cstime), e.g. a PostgreSQL postmaster's
 * exited backends.
 */
export function procCpuSeconds(pid: number, withReaped: boolean): number | undefined {
  const f = statFields(pid);
  if (f === undefined) return undefined;
  let ticks = Number(f[11]) + Number(f[12]);
  if (withReaped) ticks += Number(f[13]) + Number(f[14]);
  return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : undefined;
}

/** The live children of a process (from /proc/PID/task/TID/children). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text) for (const c of text.split(" ")) out.push(Number(c));
    }
  } catch {}
  return out;
}

/** Resident set size of a process in bytes (VmRSS); undefined when unknown. */
export function rssBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** One unary call of a generated grpc-js client method as a promise, with a deadline `timeoutMs` away. */
export function unary<Req, Res>(
  timeoutMs: number,
  fn: (
    req: Req,
    meta: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r: Res) => void,
  ) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (e, r) =>
      e ? reject(e) : resolve(r),
    );
  });
}

/** One CapacityPool manifest as YAML text (no spec window: the pool is always open). */
export function poolManifestYaml(
  namespace: string,
  name: string,
  capacity: number,
  labels: Record<string, string>,
): string {
  const l = Object.entries(labels)
    .map(([k, v]) => `    ${k}: ${v}\n`)
    .join("");
  return `apiVersion: berth.dev/v1alpha1\nkind: CapacityPool\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\n  labels:\n${l}spec:\n  capacity: ${capacity}\n`;
}
