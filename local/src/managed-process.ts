// One supervised child process: spawned, probed for readiness, restarted with
// backoff when it crashes, stopped gracefully.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { RestartBackoff, type RestartBackoffOptions } from "./backoff.js";

/** Something that happened to a managed process, for the supervisor's log. */
export type LifecycleEvent =
  | { readonly type: "started"; readonly pid: number; readonly generation: number }
  | { readonly type: "ready"; readonly pid: number; readonly generation: number }
  | {
      readonly type: "exited";
      readonly pid: number;
      readonly code: number | null;
      readonly signal: NodeJS.Signals | null;
      readonly uptimeMs: number;
      readonly expected: boolean;
    }
  | { readonly type: "restarting"; readonly delayMs: number }
  | { readonly type: "stop-timeout"; readonly pid: number; readonly timeoutMs: number };

/** What a readiness probe found: ready, or not (with the reason the process gives, if any). */
export type ProbeAnswer =
  | { readonly ready: true }
  | { readonly ready: false; readonly reason?: string | undefined };

/** Options of {@link ManagedProcess}. */
export interface ManagedProcessOptions {
  /** Short name, e.g. `worker-0`: the log prefix. */
  readonly name: string;
  readonly command: string;
  /** The arguments, or a function giving them afresh for each spawn (a restart may differ). */
  readonly args: readonly string[] | (() => readonly string[]);
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  /**
   * Asks the process whether it is ready (e.g. its /readyz). Called after each spawn,
   * every {@link PROBE_INTERVAL_MS}, until it says ready or exits; a rejection counts
   * as not ready (not answering yet). `pid`: the process being probed.
   */
  readonly readiness: (pid: number) => Promise<ProbeAnswer>;
  /** Called right before each spawn (e.g. to remove what the previous process left). */
  readonly beforeSpawn?: () => void;
  /** Every line the process writes. */
  readonly onLine: (line: string, stream: "stdout" | "stderr") => void;
  readonly onLifecycle?: (event: LifecycleEvent) => void;
  readonly backoff?: RestartBackoffOptions;
  /**
   * How long a first start may go without progress before it counts as failed:
   * progress is the readiness probe's not-ready reason changing (a worker's
   * "recovering N of M owned shards: …" shrinks as it recovers), so a large recovery
   * that keeps moving is waited for, however long it takes, and one that is stuck (or
   * never answers) fails after this long. Default 60,000 ms.
   */
  readonly readyTimeoutMs?: number;
  /** How long to wait after SIGTERM before SIGKILL. Default 5,000 ms. */
  readonly stopTimeoutMs?: number;
}

/** Thrown when a child process exits, or does not become ready, during its first start. */
export class ProcessStartError extends Error {
  override readonly name = "ProcessStartError";
  readonly process: string;
  readonly output: readonly string[];
  constructor(process: string, why: string, output: readonly string[]) {
    super(
      `${process} ${why}${output.length > 0 ? `; its last output:\n  ${output.join("\n  ")}` : ""}`,
    );
    this.process = process;
    this.output = output;
  }
}

const TAIL_LINES = 20;
/** Between two readiness probes of a starting process. */
export const PROBE_INTERVAL_MS = 100;

/**
 * A child process under supervision. After its first successful start, any exit
 * not asked for by {@link stop} is a crash and is followed by a restart after
 * {@link RestartBackoff}'s delay.
 */
export class ManagedProcess {
  readonly name: string;
  readonly #options: ManagedProcessOptions;
  readonly #backoff: RestartBackoff;
  #child: ChildProcess | undefined;
  #alive = false;
  #generation = 0;
  #readyGeneration = 0;
  #floorGeneration = 0;
  #startedAt = 0;
  #restarts = 0;
  #supervising = false;
  #stopping = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  /** Why the last probe found the process not ready, when it said. */
  #notReadyReason: string | undefined;
  /** During the first start: restarts its no-progress timer. */
  #startProgress: (() => void) | undefined;
  #tail: string[] = [];
  readonly #readyWaiters = new Set<() => void>();
  readonly #exitWaiters = new Set<() => void>();
  #firstStart: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(options: ManagedProcessOptions) {
    this.name = options.name;
    this.#options = options;
    this.#backoff = new RestartBackoff(options.backoff);
  }

  /** Pid of the current process; undefined between a crash and its restart. */
  get pid(): number | undefined {
    return this.#alive ? this.#child?.pid : undefined;
  }

  /** How many times the process was restarted after a crash. */
  get restarts(): number {
    return this.#restarts;
  }

  /** True once the current process has answered a readiness probe with ready. */
  get ready(): boolean {
    return this.#alive && this.#readyGeneration === this.#generation;
  }

  /**
   * Spawns the process and waits until its readiness probe says ready.
   *
   * @throws ProcessStartError when it exits or times out first (it is then killed and not restarted)
   */
  start(): Promise<void> {
    if (this.#generation > 0) throw new Error(`${this.name} was already started`);
    const timeoutMs = this.#options.readyTimeoutMs ?? 60_000;
    return new Promise<void>((resolve, reject) => {
      const startedAt = Date.now();
      let timer: NodeJS.Timeout | undefined;
      const expire = () => {
        const asked = this.#firstStart;
        this.#firstStart = undefined;
        const why = this.#notReadyReason;
        this.killNow();
        if (asked === undefined) return;
        const total = Date.now() - startedAt;
        const stalled = total > timeoutMs + PROBE_INTERVAL_MS ? ` (started ${total} ms ago)` : "";
        reject(
          new ProcessStartError(
            this.name,
            `made no progress towards ready for ${timeoutMs} ms${stalled}${why === undefined ? "" : ` (it says: ${why})`}`,
            this.#tail,
          ),
        );
      };
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(expire, timeoutMs);
      };
      this.#startProgress = arm;
      arm();
      this.#firstStart = {
        resolve: () => {
          this.#startProgress = undefined;
          clearTimeout(timer);
          this.#supervising = true;
          resolve();
        },
        reject: (e) => {
          this.#startProgress = undefined;
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#spawn();
    });
  }

  /** Sends a signal to the process (e.g. SIGKILL to simulate a crash). It will be restarted. */
  kill(signal: NodeJS.Signals): void {
    // A restart wait that begins now must not count the current process as restarted.
    this.#floorGeneration = this.#generation;
    this.#signal(signal);
  }

  /**
   * Resolves with the new pid once the process has been restarted after its last
   * exit (or after the last {@link kill}) and is ready again.
   */
  waitForRestart(timeoutMs = 60_000): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const check = () => {
        const pid = this.pid;
        if (this.ready && this.#generation > this.#floorGeneration && pid !== undefined) {
          clearTimeout(timer);
          this.#readyWaiters.delete(check);
          resolve(pid);
        }
      };
      const timer = setTimeout(() => {
        this.#readyWaiters.delete(check);
        reject(new Error(`${this.name} was not restarted within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#readyWaiters.add(check);
      check();
    });
  }

  /** Stops the process: SIGTERM, then SIGKILL after the stop timeout. Idempotent. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#probeTimer);
    if (!this.#alive) return;
    const pid = this.#child?.pid ?? 0;
    const exited = this.#waitForExit();
    this.#signal("SIGTERM");
    const timeoutMs = this.#options.stopTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.#options.onLifecycle?.({ type: "stop-timeout", pid, timeoutMs });
      this.#signal("SIGKILL");
      await exited;
    }
  }

  /** SIGKILLs the process group at once, synchronously (for `process.on("exit")`). */
  killNow(): void {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#probeTimer);
    this.#signal("SIGKILL");
  }

  #waitForExit(): Promise<void> {
    if (!this.#alive) return Promise.resolve();
    return new Promise((resolve) => this.#exitWaiters.add(resolve));
  }

  #signal(signal: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (!this.#alive || pid === undefined) return;
    try {
      // The child leads its own process group (detached): signal the group, so
      // anything it spawned goes too.
      process.kill(-pid, signal);
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code === "ESRCH") return;
      try {
        process.kill(pid, signal);
      } catch (inner: unknown) {
        if ((inner as NodeJS.ErrnoException).code !== "ESRCH") throw inner;
      }
    }
  }

  #spawn(): void {
    const generation = ++this.#generation;
    const o = this.#options;
    o.beforeSpawn?.();
    const child = spawn(o.command, [...(typeof o.args === "function" ? o.args() : o.args)], {
      cwd: this.#options.cwd,
      env: this.#options.env,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: a terminal's Ctrl-C reaches only the supervisor,
      // which then stops children in order.
      detached: true,
    });
    this.#child = child;
    this.#alive = child.pid !== undefined;
    this.#startedAt = Date.now();
    let exitHandled = false;
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (exitHandled) return;
      exitHandled = true;
      this.#onExit(generation, child.pid ?? 0, code, signal);
    };
    child.on("error", (e: Error) => {
      this.#remember(`spawn failed: ${e.message}`);
      onExit(null, null);
    });
    child.on("exit", onExit);
    for (const [stream, name] of [
      [child.stdout, "stdout"],
      [child.stderr, "stderr"],
    ] as const) {
      if (stream === null) continue;
      createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) => {
        this.#remember(line);
        this.#options.onLine(line, name);
      });
    }
    if (child.pid !== undefined) {
      this.#options.onLifecycle?.({ type: "started", pid: child.pid, generation });
      this.#notReadyReason = undefined;
      this.#probe(generation, child.pid);
    }
  }

  /** Probes the process of `generation` until it says ready, exits, or is stopped. */
  #probe(generation: number, pid: number): void {
    const current = () => generation === this.#generation && this.#alive && !this.#stopping;
    const attempt = async () => {
      if (!current()) return;
      const answer: ProbeAnswer = await this.#options
        .readiness(pid)
        .catch(() => ({ ready: false, reason: undefined }));
      if (!current()) return;
      if (answer.ready) {
        this.#onReady(generation, pid);
        return;
      }
      if (answer.reason !== undefined && answer.reason !== this.#notReadyReason) {
        this.#startProgress?.();
      }
      this.#notReadyReason = answer.reason;
      this.#probeTimer = setTimeout(() => void attempt(), PROBE_INTERVAL_MS);
    };
    void attempt();
  }

  #remember(line: string): void {
    this.#tail.push(line);
    if (this.#tail.length > TAIL_LINES) this.#tail.shift();
  }

  #onReady(generation: number, pid: number): void {
    if (this.#readyGeneration === generation) return;
    this.#readyGeneration = generation;
    this.#options.onLifecycle?.({ type: "ready", pid, generation });
    this.#firstStart?.resolve();
    this.#firstStart = undefined;
    for (const check of [...this.#readyWaiters]) check();
  }

  #onExit(
    generation: number,
    pid: number,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): void {
    if (generation !== this.#generation) return;
    this.#alive = false;
    const uptimeMs = Date.now() - this.#startedAt;
    const expected = this.#stopping;
    this.#options.onLifecycle?.({ type: "exited", pid, code, signal, uptimeMs, expected });
    for (const resolve of [...this.#exitWaiters]) resolve();
    this.#exitWaiters.clear();
    if (this.#firstStart !== undefined) {
      const how = signal === null ? `code ${code}` : `signal ${signal}`;
      this.#firstStart.reject(
        new ProcessStartError(this.name, `exited with ${how} before it was ready`, this.#tail),
      );
      this.#firstStart = undefined;
      return;
    }
    if (this.#stopping || !this.#supervising) return;
    const delayMs = this.#backoff.next(uptimeMs);
    this.#options.onLifecycle?.({ type: "restarting", delayMs });
    this.#restartTimer = setTimeout(() => {
      if (this.#stopping) return;
      this.#restarts++;
      this.#spawn();
    }, delayMs);
  }
}
