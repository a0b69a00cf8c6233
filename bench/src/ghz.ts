// ghz (github.com/bojand/ghz, Go) as the bench's gRPC load generator: built once with
// `go install` into ${XDG_CACHE_HOME:-~/.cache}/berth/tools/ghz-<version>/ under a
// cross-process lock (the one the Kubernetes build cache uses), then run per cell.
// Closed loop: `-c N -z Ts`; fixed rate (open loop): `--rps R --async`, which sends each
// call on its tick without waiting for earlier replies, so a slow reply cannot delay the
// next send (no coordinated omission from a waiting worker).
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { withFileLock } from "@berth/testing/kubernetes";

export const GHZ_VERSION = "v0.120.0";
const GO = process.env.BERTH_GO ?? "/usr/local/go/bin/go";

function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "berth", "tools", `ghz-${GHZ_VERSION}`);
}

/** Why ghz cannot be built here, or undefined. */
export function ghzSkipReason(): string | undefined {
  if (existsSync(join(cacheDir(), "ghz"))) return undefined;
  if (!existsSync(GO)) return `no Go toolchain at ${GO} to build ghz (set BERTH_GO)`;
  return undefined;
}

/** The path of the ghz binary, building it first when it is not cached. */
export async function ensureGhz(log: (line: string) => void): Promise<string> {
  const dir = cacheDir();
  const bin = join(dir, "ghz");
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  return withFileLock(
    join(dir, "build.lock"),
    async () => {
      if (existsSync(bin)) return bin;
      const out = join(dir, `tmp-${process.pid}`);
      rmSync(out, { recursive: true, force: true });
      log(`building ghz ${GHZ_VERSION} with ${GO} install (once, into ${dir})`);
      const started = Date.now();
      await new Promise<void>((resolve, reject) => {
        const child = spawn(GO, ["install", `github.com/bojand/ghz/cmd/ghz@${GHZ_VERSION}`], {
          env: { ...process.env, GOBIN: out, GOTOOLCHAIN: "local", CGO_ENABLED: "0" },
          stdio: ["ignore", "ignore", "pipe"],
        });
        let err = "";
        child.stderr?.setEncoding("utf8").on("data", (d: string) => {
          err = (err + d).slice(-4000);
        });
        child.once("error", reject);
        child.once("exit", (code) =>
          code === 0 ? resolve() : reject(new Error(`go install ghz failed (${code}): ${err}`)),
        );
      });
      renameSync(join(out, "ghz"), bin); // atomic: a present binary is a complete one
      rmSync(out, { recursive: true, force: true });
      log(`ghz built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      return bin;
    },
    { onWait: (pid) => log(`waiting for process ${pid}, which is building ghz`) },
  );
}

/** One ghz cell's result. */
export interface GhzResult {
  readonly ok: number;
  readonly failed: number;
  readonly seconds: number;
  readonly rate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly clientCpuSeconds: number;
  readonly failures: ReadonlyMap<string, number>;
}

/** What ghz calls: a proto file, a method and a JSON data template. */
export interface GhzTarget {
  readonly address: string;
  readonly proto: string;
  readonly importPaths: readonly string[];
  readonly call: string;
  /** JSON, with ghz template actions ({{newUUID}}, sprig's randInt…). */
  readonly data: string;
}

/** Runs ghz once: closed loop with `concurrency` in flight, or at `rate` req/s. */
export async function runGhz(
  bin: string,
  t: GhzTarget,
  o: { concurrency: number; seconds: number; rate?: number; outFile: string },
): Promise<GhzResult> {
  const args = [
    "--insecure",
    "--proto",
    t.proto,
    ...(t.importPaths.length > 0 ? ["--import-paths", t.importPaths.join(",")] : []),
    "--call",
    t.call,
    "-d",
    t.data,
    "-c",
    String(o.concurrency),
    "-z",
    `${o.seconds}s`,
    "--duration-stop=ignore",
    "-t",
    "10s",
    ...(o.rate === undefined ? [] : ["--rps", String(Math.max(1, Math.round(o.rate))), "--async"]),
    "--format",
    "json",
    "-o",
    o.outFile,
    t.address,
  ];
  // The shell prints its own /proc stat after waiting for ghz: cutime + cstime are ghz's CPU.
  const child = spawn(
    "sh",
    ["-c", '"$@"; rc=$?; echo "STAT $(cat /proc/$$/stat)"; exit $rc', "sh", bin, ...args],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err = (err + d).slice(-4000);
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`ghz failed (${code}): ${err}${out.slice(-2000)}`);
  const stat = /^STAT (.*)$/m.exec(out)?.[1] ?? "";
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const clientCpuSeconds = (Number(f[13]) + Number(f[14])) / 100;
  const report = JSON.parse(readFileSync(o.outFile, "utf8")) as {
    count: number;
    total: number;
    rps: number;
    statusCodeDistribution?: Record<string, number>;
    errorDistribution?: Record<string, number>;
    latencyDistribution?: { percentage: number; latency: number }[] | null;
  };
  rmSync(o.outFile, { force: true });
  const codes = report.statusCodeDistribution ?? {};
  const ok = codes.OK ?? 0;
  const failed = Object.entries(codes).reduce((n, [k, v]) => (k === "OK" ? n : n + v), 0);
  const lat = (p: number): number =>
    (report.latencyDistribution?.find((x) => x.percentage === p)?.latency ?? 0) / 1e6;
  const failures = new Map<string, number>();
  for (const [k, v] of Object.entries(report.errorDistribution ?? {}))
    failures.set(k.slice(0, 80), v);
  const seconds = report.total / 1e9;
  return {
    ok,
    failed,
    seconds,
    rate: (ok + failed) / seconds,
    p50Ms: lat(50),
    p99Ms: lat(99),
    clientCpuSeconds,
    failures,
  };
}
