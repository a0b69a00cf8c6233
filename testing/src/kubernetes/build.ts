/**
 * Builds (once) the Kubernetes control-plane binaries from Go modules into a cache outside
 * the clone, keyed by version and protected by a lock. See README.md in this directory.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  type BuildVersions,
  buildNice,
  type CacheLayout,
  CONTROL_PLANE_COMMANDS,
  type CommandSpec,
  cacheLayout,
  commandSpecs,
  DEFAULT_ETCD_VERSION,
  DEFAULT_HELM_VERSION,
  DEFAULT_KUBERNETES_VERSION,
  DEFAULT_PROMTOOL_VERSION,
  etcdWrapperFiles,
  expectedStamp,
  goBuildArgs,
  goEnv,
  kubernetesCacheRoot,
  kubernetesWrapperGoMod,
  moduleVersion,
  stampMatches,
  toolsGo,
  toolWrapperFiles,
  type WrapperModuleId,
} from "./build-config.js";
import { withFileLock } from "./build-lock.js";

const TAIL_LINES = 40;

/** Thrown when `go` is missing or a `go` step (download, tidy, build) fails. */
export class KubernetesBuildError extends Error {
  override readonly name = "KubernetesBuildError";
  constructor(
    message: string,
    /** The last lines `go` printed, if it ran. */
    readonly outputTail: readonly string[] = [],
  ) {
    super(
      outputTail.length ? `${message}\n--- last go output ---\n${outputTail.join("\n")}` : message,
    );
  }
}

/** Options of {@link ensureKubernetesBinaries}. */
export interface BuildOptions {
  /** Commands to make sure of; default {@link CONTROL_PLANE_COMMANDS}. */
  readonly commands?: readonly string[];
  readonly kubernetesVersion?: string;
  readonly etcdVersion?: string;
  readonly helmVersion?: string;
  /** The prometheus Go module version promtool is built from (v0.3XY.Z). */
  readonly promtoolVersion?: string;
  /** Cache root; default {@link kubernetesCacheRoot} (`$BERTH_KUBERNETES_CACHE` or XDG). */
  readonly cacheRoot?: string;
  /** The `go` executable; default `$BERTH_GO` or `go` on PATH. */
  readonly go?: string;
  /** nice increment for `go`; default `$BERTH_BUILD_NICE` or 0. */
  readonly nice?: number;
  /** Progress lines; default stderr with a `[kubernetes] ` prefix. */
  readonly log?: (line: string) => void;
  /** How often "still building" is printed; default 30 000 ms. */
  readonly progressEveryMs?: number;
}

/** What {@link ensureKubernetesBinaries} found or built. */
export interface BuiltBinaries {
  readonly layout: CacheLayout;
  /** Absolute path of each requested command. */
  readonly paths: Readonly<Record<string, string>>;
  /** Commands built by this call (empty when all were cached). */
  readonly built: readonly string[];
  /** Wall-clock and CPU (user+sys of `go` and its children) seconds of this call's builds. */
  readonly wallSeconds: number;
  readonly cpuSeconds: number | undefined;
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[kubernetes] ${line}\n`);
};

/** The `go` the harness uses: `$BERTH_GO` or `go`. */
export function goExecutable(): string {
  return process.env.BERTH_GO || "go";
}

/** Why Kubernetes tests cannot run here (no runnable `go`), or undefined when they can. */
export function goMissingReason(go: string = goExecutable()): string | undefined {
  const r = spawnSync(go, ["version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    return `"${go}" is not runnable (${r.error?.message ?? `exit ${r.status}`}): install Go ≥ 1.26 to build kube-apiserver, kubectl and etcd`;
  }
  return undefined;
}

/** The cache layout for a version under the default (or given) cache root. */
export function defaultLayout(
  kubernetesVersion: string = DEFAULT_KUBERNETES_VERSION,
  cacheRoot?: string,
): CacheLayout {
  return cacheLayout(cacheRoot ?? kubernetesCacheRoot(process.env, homedir()), kubernetesVersion);
}

/** Whether each command already has a complete binary (stamp written last matches). */
export async function isBinaryComplete(
  layout: CacheLayout,
  spec: CommandSpec,
  versions: BuildVersions,
): Promise<boolean> {
  try {
    const stamp: unknown = JSON.parse(await readFile(stampPath(layout, spec.name), "utf8"));
    if (!stampMatches(stamp, spec, versions)) return false;
    const s = await stat(join(layout.bin, spec.name));
    return s.isFile() && s.size === (stamp as { size: number }).size;
  } catch {
    return false;
  }
}

const stampPath = (layout: CacheLayout, name: string): string =>
  join(layout.bin, `.${name}.stamp.json`);

/**
 * Makes sure the requested binaries exist in the cache and returns their paths. Builds
 * what is missing: one `go build` per wrapper module for all its missing commands, into
 * a temp dir, then renames each binary into `bin/` and writes its stamp last, so an
 * interrupted build never leaves a binary that looks complete. Several processes at once
 * build only once (a lock file; a lock of a dead pid is taken over).
 */
export async function ensureKubernetesBinaries(options: BuildOptions = {}): Promise<BuiltBinaries> {
  const versions: BuildVersions = {
    kubernetes: options.kubernetesVersion ?? DEFAULT_KUBERNETES_VERSION,
    etcd: options.etcdVersion ?? DEFAULT_ETCD_VERSION,
    helm: options.helmVersion ?? DEFAULT_HELM_VERSION,
    promtool: options.promtoolVersion ?? DEFAULT_PROMTOOL_VERSION,
  };
  const specs = commandSpecs(options.commands ?? CONTROL_PLANE_COMMANDS);
  const layout = defaultLayout(versions.kubernetes, options.cacheRoot);
  const log = options.log ?? defaultLog;
  const paths = Object.fromEntries(specs.map((s) => [s.name, join(layout.bin, s.name)]));
  const missing = async (): Promise<CommandSpec[]> => {
    const out: CommandSpec[] = [];
    for (const s of specs) if (!(await isBinaryComplete(layout, s, versions))) out.push(s);
    return out;
  };
  const none = { layout, paths, built: [], wallSeconds: 0, cpuSeconds: 0 };
  if ((await missing()).length === 0) return none;

  await mkdir(layout.root, { recursive: true });
  return withFileLock(
    layout.lock,
    async () => {
      const todo = await missing();
      if (todo.length === 0) return none;
      const go = options.go ?? goExecutable();
      const why = goMissingReason(go);
      if (why) throw new KubernetesBuildError(why);
      const nice = options.nice ?? buildNice(process.env);
      const started = Date.now();
      const cpuBefore = childrenCpuSeconds();
      log(
        `building ${todo.map((s) => `${s.name} ${moduleVersion(s.module, versions)}`).join(", ")} into ${layout.bin}` +
          (nice ? ` at nice ${nice}` : "") +
          "; the first build takes a while (about 10–20 min of CPU on 2 cores)",
      );
      await mkdir(layout.bin, { recursive: true });
      const byModule = new Map<WrapperModuleId, CommandSpec[]>();
      for (const s of todo) byModule.set(s.module, [...(byModule.get(s.module) ?? []), s]);
      const run = (args: string[], cwd: string, phase: string): Promise<string> =>
        runGo({
          go,
          args,
          cwd,
          env: goEnv(layout, process.env),
          nice,
          phase,
          log,
          progressEveryMs: options.progressEveryMs ?? 30_000,
        });
      // etcd first: small, so a broken toolchain shows up in seconds, not after kube-apiserver.
      for (const module of ["etcd", "kubernetes", "helm", "promtool"] as const) {
        const group = byModule.get(module);
        if (!group) continue;
        const dir = layout.wrapper(module);
        await prepareWrapper(module, dir, versions, group, layout, run, log);
        const tmp = await mkdtemp(join(layout.bin, ".partial-"));
        try {
          const t0 = Date.now();
          log(`compiling ${group.map((s) => s.name).join(", ")} (one go build, shared GOCACHE)`);
          await run(
            goBuildArgs(
              module,
              versions,
              group.map((s) => s.goPackage),
              tmp,
            ),
            dir,
            `compiling ${group.map((s) => s.name).join(", ")}`,
          );
          for (const s of group) {
            const from = join(tmp, s.goPackage.slice(s.goPackage.lastIndexOf("/") + 1));
            const size = (await stat(from)).size;
            const to = join(layout.bin, s.name);
            await rm(stampPath(layout, s.name), { force: true });
            await rename(from, to);
            await writeFile(
              stampPath(layout, s.name),
              `${JSON.stringify({ ...expectedStamp(s, versions), size }, null, 2)}\n`,
            );
          }
          log(
            `built ${group.map((s) => s.name).join(", ")} in ${seconds(Date.now() - t0)} s (wall)`,
          );
        } finally {
          await rm(tmp, { recursive: true, force: true });
        }
      }
      const wallSeconds = (Date.now() - started) / 1000;
      const cpuAfter = childrenCpuSeconds();
      const cpuSeconds =
        cpuBefore !== undefined && cpuAfter !== undefined ? cpuAfter - cpuBefore : undefined;
      log(
        `build done: ${todo.map((s) => s.name).join(", ")} in ${wallSeconds.toFixed(0)} s wall` +
          (cpuSeconds !== undefined ? `, ${cpuSeconds.toFixed(0)} s CPU` : ""),
      );
      return { layout, paths, built: todo.map((s) => s.name), wallSeconds, cpuSeconds };
    },
    {
      onWait: (holder, waited) =>
        log(
          `waiting for process ${holder}, which is building the same binaries (${seconds(waited)} s)`,
        ),
    },
  );
}

/** Writes a wrapper module's files and runs `go mod tidy` when they changed. */
async function prepareWrapper(
  module: WrapperModuleId,
  dir: string,
  versions: BuildVersions,
  group: readonly CommandSpec[],
  layout: CacheLayout,
  run: (args: string[], cwd: string, phase: string) => Promise<string>,
  log: (line: string) => void,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  let files: Record<string, string>;
  if (module === "etcd") {
    files = etcdWrapperFiles(versions.etcd);
  } else if (module === "helm" || module === "promtool") {
    files = toolWrapperFiles(
      module,
      moduleVersion(module, versions),
      group.map((s) => s.goPackage),
    );
  } else {
    log(`resolving k8s.io/kubernetes ${versions.kubernetes} (go mod download)`);
    const json = await run(
      ["mod", "download", "-json", `k8s.io/kubernetes@${versions.kubernetes}`],
      layout.root,
      "downloading k8s.io/kubernetes",
    );
    const goModPath = (JSON.parse(json) as { GoMod?: string }).GoMod;
    if (!goModPath) throw new KubernetesBuildError("go mod download printed no GoMod path");
    const upstream = await readFile(goModPath, "utf8");
    files = {
      "go.mod": kubernetesWrapperGoMod(versions.kubernetes, upstream),
      "tools.go": toolsGo(group.map((s) => s.goPackage)),
    };
  }
  // The generated inputs, remembered so an unchanged wrapper is not re-tidied.
  const inputs = JSON.stringify(files);
  const inputsFile = join(dir, ".inputs.json");
  const previous = await readFile(inputsFile, "utf8").catch(() => "");
  if (previous === inputs) return;
  await rm(inputsFile, { force: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  await rm(join(dir, "go.sum"), { force: true });
  log(`preparing the ${module} wrapper module in ${dir} (go mod tidy downloads the sources)`);
  await run(["mod", "tidy"], dir, `go mod tidy (${module})`);
  await writeFile(inputsFile, inputs);
}

interface RunGo {
  go: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  nice: number;
  phase: string;
  log: (line: string) => void;
  progressEveryMs: number;
}

/** Runs `go`, returns its stdout; relays progress (packages compiled) periodically. */
function runGo(r: RunGo): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const [cmd, args] =
      r.nice > 0 ? ["nice", ["-n", String(r.nice), r.go, ...r.args]] : [r.go, r.args];
    const child = spawn(cmd, args, { cwd: r.cwd, env: r.env, stdio: ["ignore", "pipe", "pipe"] });
    const tail: string[] = [];
    let stdout = "";
    let lines = 0;
    let buffer = "";
    let last = "";
    const started = Date.now();
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (c: string) => {
      buffer += c;
      const parts = buffer.split("\n");
      buffer = parts.pop() ?? "";
      for (const l of parts) {
        lines++;
        last = l.trim();
        tail.push(l);
        if (tail.length > TAIL_LINES) tail.shift();
      }
    });
    const timer = setInterval(() => {
      r.log(
        `still ${r.phase} … (${seconds(Date.now() - started)} s` +
          (lines ? `, ${lines} packages/modules so far, latest ${last.slice(0, 100)}` : "") +
          ")",
      );
    }, r.progressEveryMs);
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearInterval(timer);
      reject(new KubernetesBuildError(`could not run "${cmd}": ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearInterval(timer);
      if (buffer) tail.push(buffer);
      if (code === 0) resolvePromise(stdout);
      else
        reject(
          new KubernetesBuildError(
            `go ${r.args[0]} failed (${signal ?? `exit code ${code}`}) while ${r.phase} in ${r.cwd}`,
            tail.slice(-TAIL_LINES),
          ),
        );
    });
  });
}

/** CPU seconds (user+sys) of this process's waited-for children, from /proc (Linux). */
function childrenCpuSeconds(): number | undefined {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After "pid (comm) ": field 3 is index 0, so cutime (16) is 13 and cstime (17) is 14.
    const ticks = Number(fields[13]) + Number(fields[14]);
    return Number.isFinite(ticks) ? ticks / clockTicks() : undefined;
  } catch {
    return undefined;
  }
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
    const n = Number(r.stdout?.trim());
    ticksPerSecond = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

const seconds = (ms: number): string => (ms / 1000).toFixed(0);
