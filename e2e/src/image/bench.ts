/**
 * Start-to-ready of a worker and a gateway: in a container of the image (runc, read-only
 * root, as the tests run it) vs. on the host from the same bundles (`node <pkg>/bin/…`) vs.
 * on the host through tsx (TypeScript compiled at start, as development runs it). Each is
 * timed from the spawn to its first 200 on /readyz, polled every 10 ms; the container's
 * working-container setup (buildah from + mount, containerd's snapshot in a pod) is reported
 * apart. Numbers, not assertions: `npm run image -- bench [--runs N]`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "./base-image.js";
import { type BuiltImage, buildBerthImage } from "./build.js";
import { startContainer } from "./container.js";
import { run } from "./exec.js";
import {
  DATA_MOUNT,
  isAddressInUse,
  prepareSingleNode,
  type SingleNode,
  waitReady,
} from "./single-node.js";

type Mode = "container" | "host (bundle)" | "host (tsx)";
type Program = "worker" | "gateway";

/** One measurement. */
export interface StartSample {
  readonly mode: Mode;
  readonly program: Program;
  /** Spawn to first 200 on /readyz. */
  readonly readyMs: number;
  /** Container only: making and mounting the working container before the spawn. */
  readonly setupMs?: number;
}

/** What {@link benchmarkStartToReady} measured. */
export interface StartToReady {
  readonly image: BuiltImage;
  readonly runs: number;
  readonly samples: readonly StartSample[];
}

interface Started {
  readonly startedAt: number;
  readonly setupMs?: number;
  alive(): string | undefined;
  stop(): Promise<void>;
}

function hostProcess(args: string[]): Started {
  const startedAt = performance.now();
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let exit: string | undefined;
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exit = `exited (${code ?? signal}): ${stderr}`;
      resolve();
    }),
  );
  return {
    startedAt,
    alive: () => exit,
    stop: async () => {
      if (exit === undefined) child.kill("SIGTERM");
      await exited;
    },
  };
}

async function containerProcess(image: string, data: string, args: string[]): Promise<Started> {
  const t0 = performance.now();
  const c = await startContainer({
    image,
    args,
    mounts: [
      { type: "tmpfs", destination: "/tmp" },
      { type: "bind", source: data, destination: DATA_MOUNT },
    ],
  });
  let exit: string | undefined;
  void c.exited.then((e) => {
    exit = `exited (${e.code}): ${e.stderr.slice(-2000)}`;
  });
  return {
    startedAt: c.startedAt,
    setupMs: c.startedAt - t0,
    alive: () => exit,
    stop: async () => {
      if (exit === undefined) await c.kill("TERM").catch(() => undefined);
      await c.exited.catch(() => undefined);
      await c.remove();
    },
  };
}

async function start(
  mode: Mode,
  program: Program,
  node: SingleNode,
  image: string,
  data: string,
): Promise<Started> {
  const flags = program === "worker" ? node.workerArgs : node.gatewayArgs;
  switch (mode) {
    case "container":
      return containerProcess(image, data, [`berth-${program}`, ...flags(DATA_MOUNT)]);
    case "host (bundle)":
      return hostProcess([`${program}/bin/berth-${program}.js`, ...flags(data)]);
    case "host (tsx)":
      return hostProcess(["--import", "tsx", `${program}/src/main.ts`, ...flags(data)]);
  }
}

/** One worker then one gateway in `mode`, each timed to ready; both stopped afterwards. */
async function measureOnce(mode: Mode, image: string): Promise<StartSample[]> {
  const data = await mkdtemp(join(tmpdir(), "berth-image-bench-"));
  const running: Started[] = [];
  const samples: StartSample[] = [];
  try {
    const owner = mode === "container" ? { uid: 10001, gid: 10001 } : undefined;
    const node = await prepareSingleNode(data, owner);
    for (const program of ["worker", "gateway"] as const) {
      const p = await start(mode, program, node, image, data);
      running.push(p);
      const readyMs = await waitReady(program === "worker" ? node.workerHttp : node.gatewayHttp, {
        since: p.startedAt,
        timeoutMs: 60_000,
        alive: p.alive,
      });
      samples.push({
        mode,
        program,
        readyMs,
        ...(p.setupMs === undefined ? {} : { setupMs: p.setupMs }),
      });
    }
    return samples;
  } finally {
    await Promise.all(running.map((p) => p.stop()));
    await rm(data, { recursive: true, force: true });
  }
}

/** Measures start-to-ready `runs` times per mode (see the module doc). */
export async function benchmarkStartToReady(options: {
  readonly runs: number;
  readonly log?: (line: string) => void;
}): Promise<StartToReady> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[image] ${line}\n`));
  const image = await buildBerthImage({ log });
  // The host runs the same bundles the image has: build them from this tree.
  await run(process.execPath, ["scripts/build.mjs"], { cwd: REPO_ROOT });
  const samples: StartSample[] = [];
  const modes: Mode[] = ["container", "host (bundle)", "host (tsx)"];
  for (let i = 0; i < options.runs; i++) {
    for (const mode of modes) {
      for (let attempt = 1; ; attempt++) {
        try {
          samples.push(...(await measureOnce(mode, image.tag)));
          break;
        } catch (e: unknown) {
          if (!isAddressInUse(e) || attempt === 3) throw e;
          log(`bench: a chosen port was taken meanwhile; again with fresh ports`);
        }
      }
      for (const s of samples.slice(-2)) {
        log(
          `bench run ${i + 1}/${options.runs}: ${s.program} ${mode} ready in ${Math.round(s.readyMs)} ms`,
        );
      }
    }
  }
  return { image, runs: options.runs, samples };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/** The result as a Markdown table (median, min, max per program and mode) plus sizes. */
export function formatStartToReady(r: StartToReady): string {
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  const lines = [
    `Image ${r.image.tag} (${r.image.imageId.slice(0, 12)}): OCI archive ${mb(r.image.sizeBytes)}, unpacked ${mb(r.image.unpackedBytes)}`,
    "",
    `| program | mode | start → /readyz median | min | max | runs |`,
    `|---|---|---|---|---|---|`,
  ];
  for (const program of ["worker", "gateway"] as const) {
    for (const mode of ["container", "host (bundle)", "host (tsx)"] as const) {
      const xs = r.samples
        .filter((s) => s.program === program && s.mode === mode)
        .map((s) => s.readyMs)
        .sort((a, b) => a - b);
      if (xs.length === 0) continue;
      lines.push(
        `| ${program} | ${mode} | ${Math.round(quantile(xs, 0.5))} ms | ${Math.round(xs[0] as number)} ms | ${Math.round(xs.at(-1) as number)} ms | ${xs.length} |`,
      );
    }
  }
  const setup = r.samples
    .flatMap((s) => (s.setupMs === undefined ? [] : [s.setupMs]))
    .sort((a, b) => a - b);
  if (setup.length > 0) {
    lines.push(
      "",
      `Container setup before the spawn (buildah from + mount): median ${Math.round(quantile(setup, 0.5))} ms over ${setup.length}.`,
    );
  }
  return `${lines.join("\n")}\n`;
}
