// Berth's processes on the host against a real kube-apiserver: operators, workers in
// Kubernetes mode and a gateway, each a child process running the sources, each with
// its own kubeconfig. Readiness is read from each process's /readyz (never from its
// logs); output goes to one log file per process, kept for a failed test to show.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { freePorts } from "../kubernetes/control-plane.js";

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const PARENT_WATCH = pathToFileURL(
  fileURLToPath(new URL("../local/parent-watch.ts", import.meta.url)),
).href;

/** One child process of the test. */
export class HostProcess {
  readonly name: string;
  readonly logFile: string;
  readonly http: string;
  #child: ChildProcess | undefined;
  #exited: Promise<number | null> | undefined;
  readonly #args: readonly string[];
  readonly #entry: string;
  readonly #env: NodeJS.ProcessEnv;

  /** @param env added to (and overriding) the environment, e.g. `{ BERTH_LOG_LEVEL: "debug" }` */
  constructor(
    name: string,
    entry: string,
    args: readonly string[],
    logDir: string,
    http: string,
    env: NodeJS.ProcessEnv = {},
  ) {
    this.name = name;
    this.#entry = entry;
    this.#args = args;
    this.#env = env;
    this.http = http;
    mkdirSync(logDir, { recursive: true });
    this.logFile = resolve(logDir, `${name}.log`);
  }

  /** Starts (or restarts) the process; resolves once it is spawned. */
  start(): void {
    const out = createWriteStream(this.logFile, { flags: "a" });
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--import", PARENT_WATCH, resolve(REPO_ROOT, this.#entry), ...this.#args],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          BERTH_SUPERVISOR_PID: String(process.pid),
          BERTH_LOG_LEVEL: "info",
          ...this.#env,
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    this.#child = child;
    this.#exited = new Promise((r) => child.once("exit", (code) => r(code)));
  }

  get pid(): number | undefined {
    return this.#child?.exitCode === null ? this.#child.pid : undefined;
  }

  /** /readyz answers 200. */
  async ready(): Promise<boolean> {
    try {
      const r = await fetch(`http://${this.http}/readyz`, { signal: AbortSignal.timeout(2_000) });
      return r.status === 200;
    } catch {
      return false;
    }
  }

  /** The text of /metrics. */
  async metrics(): Promise<string> {
    const r = await fetch(`http://${this.http}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return r.text();
  }

  /** Sends a signal; resolves with the exit code once it exited (SIGKILL after `timeoutMs`). */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000): Promise<number | null> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      return child?.exitCode ?? null;
    }
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const code = await this.#exited;
    clearTimeout(timer);
    return code ?? null;
  }

  /** The last lines of its output, for a failure message. */
  tail(lines = 30): string {
    try {
      return readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no output)";
    }
  }
}

/** Free loopback host:port addresses. */
export async function loopbackAddresses(n: number): Promise<string[]> {
  return (await freePorts(n)).map((p) => `127.0.0.1:${p}`);
}

/** Polls `check` every 50 ms until it is true; fails after `timeoutMs` with `what`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
  explain?: () => string | Promise<string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const why = explain === undefined ? "" : `\n${await explain()}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
