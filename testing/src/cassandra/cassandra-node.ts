/**
 * Fetches, configures, starts, waits for and stops a real single-node Apache Cassandra
 * on 127.0.0.1, for tests (this API) and developers (cli.ts). Needs Java 17 and, the
 * first time, Maven (the server jars come from Maven Central). See README.md.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, rmSync } from "node:fs";
import {
  link,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rename,
  rm,
  writeFile,
} from "node:fs/promises";
import { createServer, type Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import cassandra from "cassandra-driver";
import {
  CASSANDRA_LOCAL_DATA_CENTER,
  cassandraJvmArgs,
  cassandraPom,
  cassandraYaml,
  DEFAULT_CASSANDRA_VERSION,
  logbackXml,
  mavenCopyArgs,
  type YamlScalar,
} from "./cassandra-config.js";

export {
  CASSANDRA_LOCAL_DATA_CENTER,
  DEFAULT_CASSANDRA_VERSION,
  type YamlScalar,
} from "./cassandra-config.js";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const LOG_TAIL_LINES = 40;
const COMPLETE_MARKER = ".complete.json";

/** Thrown when the Cassandra server jars cannot be fetched (no Maven, Maven failed, …). */
export class CassandraFetchError extends Error {
  override readonly name = "CassandraFetchError";
  constructor(
    message: string,
    /** The last lines Maven printed, if it ran. */
    readonly outputTail: readonly string[] = [],
  ) {
    super(
      outputTail.length
        ? `${message}\n--- last Maven output ---\n${outputTail.join("\n")}`
        : message,
    );
  }
}

/** Thrown when a Cassandra node cannot be started: no usable Java, it exited, or it timed out. */
export class CassandraStartError extends Error {
  override readonly name = "CassandraStartError";
  constructor(
    message: string,
    /** The JVM's combined stdout/stderr, if it was started. */
    readonly logFile: string | undefined,
    /** The last lines of `logFile` when the start failed. */
    readonly logTail: readonly string[] = [],
  ) {
    super(
      logTail.length
        ? `${message}\n--- last ${logTail.length} lines of ${logFile} ---\n${logTail.join("\n")}`
        : message,
    );
  }
}

/** Where fetched jars live: `$BERTH_CASSANDRA_CACHE/<version>` or `<repo>/.cache/cassandra/<version>`. */
export function cassandraCacheDir(version: string = DEFAULT_CASSANDRA_VERSION): string {
  const root = process.env.BERTH_CASSANDRA_CACHE || join(REPO_ROOT, ".cache", "cassandra");
  return join(resolve(root), version);
}

/** Options of {@link ensureCassandraJars}. */
export interface FetchOptions {
  /** Cassandra version; default {@link DEFAULT_CASSANDRA_VERSION}. */
  readonly version?: string;
  /** Directory for this version's pom and `lib/`; default {@link cassandraCacheDir}. */
  readonly cacheDir?: string;
  /** Progress lines; default: stderr with a `[cassandra] ` prefix. */
  readonly log?: (line: string) => void;
  /** The Maven executable; default `$BERTH_MVN` or `mvn` on PATH. */
  readonly mvn?: string;
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[cassandra] ${line}\n`);
};

/**
 * Makes sure the Cassandra server jars are in the cache and returns the jar directory.
 * Does nothing when a previous fetch completed; otherwise runs `mvn
 * dependency:copy-dependencies` on a generated pom, relaying condensed progress every few
 * seconds. Safe to call from several processes at once (a lock file serialises them).
 */
export async function ensureCassandraJars(options: FetchOptions = {}): Promise<string> {
  const version = options.version ?? DEFAULT_CASSANDRA_VERSION;
  const dir = resolve(options.cacheDir ?? cassandraCacheDir(version));
  const log = options.log ?? defaultLog;
  const libDir = join(dir, "lib");
  if (await isComplete(libDir, version)) return libDir;
  await mkdir(dir, { recursive: true });
  return withLock(join(dir, ".fetch.lock"), log, async () => {
    if (await isComplete(libDir, version)) return libDir;
    const pomFile = join(dir, "pom.xml");
    await writeFile(pomFile, cassandraPom(version));
    const partial = join(dir, `lib.partial-${process.pid}`);
    await rm(partial, { recursive: true, force: true });
    const mvn = options.mvn ?? (process.env.BERTH_MVN || "mvn");
    log(`fetching Cassandra ${version} server jars from Maven Central into ${libDir}`);
    const started = Date.now();
    const stats = await runMaven(mvn, mavenCopyArgs(pomFile, partial), log);
    const jars = (await readdir(partial).catch(() => [] as string[])).filter((f) =>
      f.endsWith(".jar"),
    );
    if (!jars.includes(`cassandra-all-${version}.jar`) || !jars.some(isJammJar)) {
      throw new CassandraFetchError(
        `Maven finished but ${partial} lacks cassandra-all-${version}.jar or jamm`,
        stats.tail,
      );
    }
    await writeFile(
      join(partial, COMPLETE_MARKER),
      `${JSON.stringify({ version, jars: jars.sort(), fetchedAt: new Date().toISOString() }, null, 2)}\n`,
    );
    await rm(libDir, { recursive: true, force: true });
    await rename(partial, libDir);
    log(
      `fetched ${jars.length} jars in ${seconds(Date.now() - started)} s ` +
        `(${stats.downloads} files, ${mb(stats.bytes)} MB downloaded by Maven)`,
    );
    return libDir;
  });
}

async function isComplete(libDir: string, version: string): Promise<boolean> {
  try {
    const marker = JSON.parse(await readFile(join(libDir, COMPLETE_MARKER), "utf8")) as {
      version?: unknown;
      jars?: unknown;
    };
    if (marker.version !== version || !Array.isArray(marker.jars)) return false;
    const present = new Set(await readdir(libDir));
    return marker.jars.every((j) => typeof j === "string" && present.has(j));
  } catch {
    return false;
  }
}

const isJammJar = (f: string): boolean => /^jamm-[\d.]+\.jar$/.test(f);

interface MavenStats {
  downloads: number;
  bytes: number;
  tail: string[];
}

/** Runs Maven, printing a one-line summary every 3 s instead of its ~600 download lines. */
function runMaven(mvn: string, args: string[], log: (line: string) => void): Promise<MavenStats> {
  return new Promise((resolvePromise, reject) => {
    const stats: MavenStats = { downloads: 0, bytes: 0, tail: [] };
    let last = "";
    let reported = 0;
    const started = Date.now();
    const child = spawn(mvn, args, { stdio: ["ignore", "pipe", "pipe"] });
    const onLine = (line: string): void => {
      stats.tail.push(line);
      if (stats.tail.length > LOG_TAIL_LINES) stats.tail.shift();
      const m = /Downloaded from \S+: (\S+) \(([\d.]+) (B|kB|MB|GB)/.exec(line);
      if (m?.[1] && m[2] && m[3]) {
        stats.downloads++;
        stats.bytes += Number(m[2]) * ({ B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }[m[3]] ?? 1);
        last = m[1].slice(m[1].lastIndexOf("/") + 1);
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buffer = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        buffer += chunk;
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        for (const l of lines) onLine(l.trimEnd());
      });
    }
    let quietTicks = 0;
    const timer = setInterval(() => {
      // Report when something new arrived, else every 15 s so a slow resolve isn't silent.
      if (stats.downloads === reported && ++quietTicks < 5) return;
      quietTicks = 0;
      reported = stats.downloads;
      const elapsed = seconds(Date.now() - started);
      log(
        stats.downloads === 0
          ? `maven: resolving (${elapsed} s), nothing downloaded yet`
          : `maven: ${stats.downloads} files (${mb(stats.bytes)} MB) downloaded after ${elapsed} s; latest ${last}`,
      );
    }, 3000);
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearInterval(timer);
      reject(
        new CassandraFetchError(
          e.code === "ENOENT"
            ? `Maven ("${mvn}") is not on PATH. Install Maven 3.6+ (Debian: apt-get install maven) or set BERTH_MVN.`
            : `could not run Maven ("${mvn}"): ${e.message}`,
        ),
      );
    });
    child.on("close", (code, signal) => {
      clearInterval(timer);
      if (code === 0) resolvePromise(stats);
      else
        reject(
          new CassandraFetchError(
            `Maven failed (${signal ?? `exit code ${code}`}) fetching the Cassandra jars`,
            stats.tail,
          ),
        );
    });
  });
}

/** Serialises fetches across processes: link(2) of a pid file is atomic. */
async function withLock<T>(
  lockPath: string,
  log: (line: string) => void,
  fn: () => Promise<T>,
): Promise<T> {
  const mine = `${lockPath}.${process.pid}`;
  await writeFile(mine, String(process.pid));
  const deadline = Date.now() + 30 * 60_000;
  let lastNotice = 0;
  try {
    for (;;) {
      try {
        await link(mine, lockPath);
        break;
      } catch (e: unknown) {
        if (!isErrno(e, "EEXIST")) throw e;
      }
      const owner = Number((await readFile(lockPath, "utf8").catch(() => "")).trim());
      if (!Number.isInteger(owner) || owner <= 0 || !isAlive(owner)) {
        await rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new CassandraFetchError(`timed out waiting for process ${owner} holding ${lockPath}`);
      }
      if (Date.now() - lastNotice > 10_000) {
        lastNotice = Date.now();
        log(`waiting for process ${owner}, which is fetching the same jars`);
      }
      await sleep(500);
    }
  } finally {
    await rm(mine, { force: true });
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}

/** Options of {@link startCassandra}. */
export interface StartOptions {
  /** Native (CQL) port on 127.0.0.1; default: a free port. */
  readonly port?: number;
  /** Internode (storage) port on 127.0.0.1; default: a free port. */
  readonly storagePort?: number;
  /**
   * Node directory (config, data, commit log, `cassandra.log`). Default: a new temp dir,
   * deleted by `stop()` unless `keepDataDir`. A given directory is kept, and reused as is
   * if it already holds a node (warm start).
   */
  readonly dataDir?: string;
  /** Keep a temp `dataDir` after `stop()`. */
  readonly keepDataDir?: boolean;
  /** JVM heap (-Xms = -Xmx) in MiB; default 512. */
  readonly heapMb?: number;
  /** Progress lines; default: stderr with a `[cassandra] ` prefix. */
  readonly log?: (line: string) => void;
  /** Cassandra version; default {@link DEFAULT_CASSANDRA_VERSION}. */
  readonly version?: string;
  /** Use these jars instead of {@link ensureCassandraJars}. */
  readonly jarDir?: string;
  /** The `java` executable; default `$BERTH_CASSANDRA_JAVA`, `$JAVA_HOME/bin/java`, `java`. */
  readonly java?: string;
  /** How long to wait for CQL to answer; default 180 000 ms. */
  readonly startTimeoutMs?: number;
  /** How long `stop()` waits after SIGTERM before SIGKILL; default 30 000 ms. */
  readonly stopTimeoutMs?: number;
  /** cassandra.yaml overrides (a `null` value removes a generated key). */
  readonly yaml?: Readonly<Record<string, YamlScalar>>;
  /** Extra JVM options, placed before the class path. */
  readonly jvmArgs?: readonly string[];
  /**
   * Require a login (PasswordAuthenticator). The superuser is Cassandra's default,
   * {@link DEFAULT_SUPERUSER}, created at once; the harness logs in with it to check CQL.
   */
  readonly passwordAuthentication?: boolean;
}

/** The superuser Cassandra creates when it starts with PasswordAuthenticator. */
export const DEFAULT_SUPERUSER = { username: "cassandra", password: "cassandra" } as const;

/** A running Cassandra node on loopback. */
export interface CassandraNode {
  readonly host: "127.0.0.1";
  /** Native (CQL) port. */
  readonly port: number;
  /** `127.0.0.1:<port>`, for cassandra-driver's `contactPoints`. */
  readonly contactPoint: string;
  /** For cassandra-driver's `localDataCenter`. */
  readonly localDataCenter: string;
  readonly storagePort: number;
  /** The JVM's pid. */
  readonly pid: number;
  readonly dataDir: string;
  /** The JVM's stdout/stderr (Cassandra logs to stdout). */
  readonly logFile: string;
  /** Settles when the JVM has exited, for whatever reason. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, wait up to `stopTimeoutMs`, then SIGKILL; idempotent. */
  stop(): Promise<void>;
  /** With `passwordAuthentication`: the superuser's login; otherwise undefined. */
  readonly superuser: { readonly username: string; readonly password: string } | undefined;
}

interface Live {
  child: ChildProcess;
  watchdog: ChildProcess | undefined;
  dataDir: string;
  removeDataDir: boolean;
}
const live = new Set<Live>();

/**
 * Starts a single Cassandra node on 127.0.0.1 and resolves once it answers
 * `SELECT release_version FROM system.local` over CQL. Rejects with
 * {@link CassandraStartError} (including the last 40 log lines) if the JVM exits or
 * `startTimeoutMs` passes. The JVM is killed when this process exits, and by a watchdog
 * if this process is killed outright, so it never outlives its parent.
 */
export async function startCassandra(options: StartOptions = {}): Promise<CassandraNode> {
  const log = options.log ?? defaultLog;
  const version = options.version ?? DEFAULT_CASSANDRA_VERSION;
  const java = resolveJava(options.java);
  const jarDir = options.jarDir ?? (await ensureCassandraJars({ version, log }));
  const jammJar = (await readdir(jarDir)).find(isJammJar);
  if (!jammJar) throw new CassandraStartError(`no jamm-*.jar in ${jarDir}`, undefined);

  for (const port of [options.port, options.storagePort]) {
    if (port !== undefined && port !== 0 && !(await isPortFree(port))) {
      throw new CassandraStartError(`port ${port} on 127.0.0.1 is already in use`, undefined);
    }
  }
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = resolve(options.dataDir ?? (await mkdtemp(join(tmpdir(), "berth-cassandra-"))));
  await mkdir(dataDir, { recursive: true });

  const autoPorts = !options.port || !options.storagePort;
  for (let attempt = 1; ; attempt++) {
    const [freeA, freeB] = await freePorts(2);
    const nativePort = options.port || (freeA as number);
    const storagePort = options.storagePort || (freeB as number);
    try {
      return await launch({
        options,
        log,
        version,
        java,
        jarDir,
        jammJar: join(jarDir, jammJar),
        dataDir,
        ownsDataDir,
        nativePort,
        storagePort,
      });
    } catch (e: unknown) {
      // A free port can be taken by someone else between our probe and the JVM's bind.
      const lostPortRace =
        e instanceof CassandraStartError && e.logTail.some((l) => /Address already in use/.test(l));
      if (!(lostPortRace && autoPorts && attempt < 3)) {
        if (ownsDataDir && !options.keepDataDir && !(e instanceof CassandraStartError)) {
          await rm(dataDir, { recursive: true, force: true });
        }
        throw e;
      }
      log("a port was taken before Cassandra could bind it; retrying with new ports");
      if (ownsDataDir) {
        await rm(dataDir, { recursive: true, force: true });
        await mkdir(dataDir, { recursive: true });
      }
    }
  }
}

interface LaunchInput {
  options: StartOptions;
  log: (line: string) => void;
  version: string;
  java: string;
  jarDir: string;
  jammJar: string;
  dataDir: string;
  ownsDataDir: boolean;
  nativePort: number;
  storagePort: number;
}

async function launch(input: LaunchInput): Promise<CassandraNode> {
  const { options, log, dataDir, nativePort, storagePort } = input;
  const configFile = join(dataDir, "cassandra.yaml");
  const logbackFile = join(dataDir, "logback.xml");
  const logFile = join(dataDir, "cassandra.log");
  const triggersDir = join(dataDir, "triggers");
  await mkdir(triggersDir, { recursive: true });
  await writeFile(
    configFile,
    cassandraYaml({
      nativePort,
      storagePort,
      overrides: {
        ...(options.passwordAuthentication ? { authenticator: "PasswordAuthenticator" } : {}),
        ...options.yaml,
      },
    }),
  );
  await writeFile(logbackFile, logbackXml());
  const args = cassandraJvmArgs({
    jarDir: input.jarDir,
    jammJar: input.jammJar,
    heapMb: options.heapMb ?? 512,
    configFile,
    logbackFile,
    storageDir: dataDir,
    logDir: join(dataDir, "logs"),
    triggersDir,
    extraJvmArgs: [
      // The default superuser is otherwise created 10 s after start.
      ...(options.passwordAuthentication ? ["-Dcassandra.superuser_setup_delay_ms=0"] : []),
      ...(options.jvmArgs ?? []),
    ],
  });

  const logStart = (await readFile(logFile).catch(() => Buffer.alloc(0))).length;
  const fd = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(input.java, args, { cwd: dataDir, stdio: ["ignore", fd, fd], detached: false });
  } finally {
    closeSync(fd);
  }
  const spawnError = new Promise<Error>((r) => child.once("error", r));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  const pid = child.pid;
  if (pid === undefined) {
    const e = await spawnError;
    throw new CassandraStartError(`could not run Java ("${input.java}"): ${e.message}`, undefined);
  }
  // npm test counts the JVMs of a run, across its test files' processes.
  const bootLog = process.env.BERTH_CASSANDRA_BOOT_LOG;
  if (bootLog) appendFileSync(bootLog, `${pid}\n`);
  const entry: Live = {
    child,
    watchdog: startWatchdog(pid),
    dataDir,
    removeDataDir: input.ownsDataDir && !options.keepDataDir,
  };
  live.add(entry);
  installExitHooks();
  child.unref();

  let ready = false;
  let stopping: Promise<void> | undefined;
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((info) => {
    exitInfo = info;
    entry.watchdog?.kill("SIGKILL");
    entry.watchdog = undefined;
    live.delete(entry);
    if (!stopping && ready) {
      log(
        `Cassandra (pid ${pid}) exited (${describeExit(info)}) without stop() being called; see ${logFile}`,
      );
    }
  });
  const stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exitInfo) {
        child.kill("SIGTERM");
        const result = await Promise.race([exited, sleep(stopTimeoutMs).then(() => undefined)]);
        if (!result) {
          log(`Cassandra (pid ${pid}) ignored SIGTERM for ${stopTimeoutMs} ms; sending SIGKILL`);
          child.kill("SIGKILL");
          await exited;
        }
      }
      if (entry.removeDataDir) await rm(dataDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const started = Date.now();
  log(
    `starting Cassandra ${input.version} (pid ${pid}) on 127.0.0.1:${nativePort} ` +
      `(storage port ${storagePort}), log ${logFile}`,
  );
  try {
    const release = await waitForCql({
      nativePort,
      login: options.passwordAuthentication ? DEFAULT_SUPERUSER : undefined,
      logFile,
      logStart,
      timeoutMs: options.startTimeoutMs ?? 180_000,
      isExited: () => exitInfo,
      log,
    });
    ready = true;
    log(
      `Cassandra ${release} ready at 127.0.0.1:${nativePort} after ${seconds(Date.now() - started)} s`,
    );
  } catch (e: unknown) {
    const info = exitInfo;
    entry.removeDataDir = false;
    if (!exitInfo) child.kill("SIGKILL");
    await stop();
    const tail = await logTail(logFile, logStart);
    const reason =
      e instanceof StartTimeout
        ? `Cassandra did not answer CQL on 127.0.0.1:${nativePort} within ${e.timeoutMs} ms (killed it)`
        : info
          ? `Cassandra exited during startup (${describeExit(info)})`
          : `Cassandra startup failed: ${e instanceof Error ? e.message : String(e)}`;
    throw new CassandraStartError(`${reason}; data dir kept: ${dataDir}`, logFile, tail);
  }

  return {
    host: "127.0.0.1",
    port: nativePort,
    contactPoint: `127.0.0.1:${nativePort}`,
    localDataCenter: CASSANDRA_LOCAL_DATA_CENTER,
    storagePort,
    pid,
    dataDir,
    logFile,
    exited,
    stop,
    superuser: options.passwordAuthentication ? DEFAULT_SUPERUSER : undefined,
  };
}

class StartTimeout extends Error {
  override readonly name = "StartTimeout";
  constructor(readonly timeoutMs: number) {
    super(`timed out after ${timeoutMs} ms`);
  }
}

/** Log lines worth relaying while a node starts. */
const MILESTONES: readonly [RegExp, string][] = [
  [/Hostname: |Heap size: /, ""],
  [/Initializing system\.local/, "initialising system keyspaces"],
  [/Loading persisted ring state|Populating token metadata/, "loading ring state"],
  [/Starting up server gossip/, "starting gossip"],
  [/state jump to NORMAL/, "joined the ring"],
  [/Starting listening for CQL clients/, "opening the CQL port"],
  [/Startup complete/, "startup complete; checking CQL"],
];

async function waitForCql(w: {
  nativePort: number;
  login: { readonly username: string; readonly password: string } | undefined;
  logFile: string;
  logStart: number;
  timeoutMs: number;
  isExited: () => unknown;
  log: (line: string) => void;
}): Promise<string> {
  const deadline = Date.now() + w.timeoutMs;
  const started = Date.now();
  let offset = w.logStart;
  let pending = "";
  let lastLine = "";
  let lastProgress = Date.now();
  const seen = new Set<number>();
  for (;;) {
    const chunk = await readFrom(w.logFile, offset);
    offset += chunk.length;
    pending += chunk.toString("utf8");
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim()) lastLine = line;
      MILESTONES.forEach(([re, label], i) => {
        if (!seen.has(i) && re.test(line)) {
          seen.add(i);
          if (label) w.log(`${label} (${seconds(Date.now() - started)} s)`);
        }
      });
      if (/^(ERROR|Exception|Error:)/.test(line)) w.log(line.slice(0, 300));
    }
    if (w.isExited()) throw new Error("exited");
    if (Date.now() > deadline) throw new StartTimeout(w.timeoutMs);
    if (await isPortOpen(w.nativePort)) {
      const release = await queryReleaseVersion(w.nativePort, "127.0.0.1", w.login).catch(
        () => undefined,
      );
      if (release) return release;
    }
    if (Date.now() - lastProgress > 10_000) {
      lastProgress = Date.now();
      w.log(
        `still starting after ${seconds(Date.now() - started)} s; last log line: ${lastLine.slice(0, 200)}`,
      );
    }
    await sleep(250);
  }
}

/** `SELECT release_version FROM system.local` on a fresh driver connection. */
export async function queryReleaseVersion(
  port: number,
  host = "127.0.0.1",
  login?: { readonly username: string; readonly password: string },
): Promise<string> {
  const client = new cassandra.Client({
    contactPoints: [`${host}:${port}`],
    localDataCenter: CASSANDRA_LOCAL_DATA_CENTER,
    socketOptions: { connectTimeout: 3000, readTimeout: 5000 },
    ...(login === undefined
      ? {}
      : { authProvider: new cassandra.auth.PlainTextAuthProvider(login.username, login.password) }),
  });
  try {
    await client.connect();
    const rs = await client.execute("SELECT release_version FROM system.local");
    const version: unknown = rs.first()?.get("release_version");
    if (typeof version !== "string") throw new Error("system.local has no release_version");
    return version;
  } finally {
    await client.shutdown().catch(() => undefined);
  }
}

async function readFrom(file: string, offset: number): Promise<Buffer> {
  const fh = await open(file, "r").catch(() => undefined);
  if (!fh) return Buffer.alloc(0);
  try {
    const { size } = await fh.stat();
    if (size <= offset) return Buffer.alloc(0);
    const buffer = Buffer.alloc(Math.min(size - offset, 4 << 20));
    const { bytesRead } = await fh.read(buffer, 0, buffer.length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

async function logTail(file: string, from: number): Promise<string[]> {
  const text = (await readFile(file).catch(() => Buffer.alloc(0))).subarray(from).toString("utf8");
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(-LOG_TAIL_LINES)
    .map((l) => (l.length > 400 ? `${l.slice(0, 400)} …` : l));
}

/**
 * A `sh` process that holds the read end of a pipe from us: when this process dies in
 * any way (even SIGKILL) the pipe closes, `read` returns, and it stops the JVM (SIGTERM,
 * then SIGKILL after 10 s). On a normal exit we SIGKILL the watchdog first.
 */
function startWatchdog(pid: number): ChildProcess | undefined {
  const script =
    'read _ignored; kill -TERM "$1" 2>/dev/null || exit 0; i=0; ' +
    'while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ' +
    'kill -KILL "$1" 2>/dev/null; exit 0';
  try {
    const watchdog = spawn("/bin/sh", ["-c", script, "berth-cassandra-watchdog", String(pid)], {
      stdio: ["pipe", "ignore", "ignore"],
      detached: false,
    });
    watchdog.on("error", () => undefined);
    watchdog.stdin?.on("error", () => undefined);
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    return watchdog;
  } catch {
    return undefined;
  }
}

let hooksInstalled = false;
/** Kill every JVM we started when this process exits or dies of a signal. */
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killAllSync);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    // Leave signals alone when the program handles them (the CLI stops cleanly itself).
    if (process.listenerCount(signal) > 0) continue;
    const handler = (): void => {
      killAllSync();
      process.removeListener(signal, handler);
      process.kill(process.pid, signal);
    };
    process.on(signal, handler);
  }
}

function killAllSync(): void {
  for (const entry of live) {
    try {
      entry.child.kill("SIGKILL");
    } catch {}
    try {
      entry.watchdog?.kill("SIGKILL");
    } catch {}
    if (entry.removeDataDir) {
      try {
        rmSync(entry.dataDir, { recursive: true, force: true, maxRetries: 2 });
      } catch {}
    }
  }
  live.clear();
}

/** Resolves the `java` to run and checks it is Java 17 (Cassandra 5.0's jvm17 options). */
export function resolveJava(explicit?: string): string {
  const javaHome = process.env.JAVA_HOME;
  const java =
    explicit ??
    (process.env.BERTH_CASSANDRA_JAVA ||
      (javaHome && existsSync(join(javaHome, "bin", "java"))
        ? join(javaHome, "bin", "java")
        : "java"));
  const r = spawnSync(java, ["-version"], { encoding: "utf8" });
  if (r.error) {
    throw new CassandraStartError(
      `cannot run Java ("${java}"): ${r.error.message}. Install Java 17 (Debian: apt-get install openjdk-17-jre-headless) or set BERTH_CASSANDRA_JAVA.`,
      undefined,
    );
  }
  const m = /version "(\d+)(?:\.(\d+))?/.exec(`${r.stderr}${r.stdout}`);
  const major = m?.[1] === "1" ? Number(m[2]) : Number(m?.[1]);
  if (major !== 17) {
    throw new CassandraStartError(
      `Cassandra ${DEFAULT_CASSANDRA_VERSION} is run here with Java 17, but "${java}" is Java ${major || "unknown"}. ` +
        `Set BERTH_CASSANDRA_JAVA or JAVA_HOME to a Java 17.`,
      undefined,
    );
  }
  return java;
}

/** True when `java` (as {@link resolveJava} would pick it) runs at all. */
export function javaAvailable(): boolean {
  try {
    resolveJava();
    return true;
  } catch {
    return false;
  }
}

/** Reserve `n` distinct free loopback ports (closed again before returning). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((r, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => r());
      });
    }
    return servers.map((s) => {
      const address = s.address();
      if (address === null || typeof address === "string") throw new Error("no port");
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((r) => {
    const server = createServer();
    server.once("error", () => r(false));
    server.listen(port, "127.0.0.1", () => server.close(() => r(true)));
  });
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
export function isPortOpen(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((r) => {
    const socket = new Socket();
    const done = (open: boolean): void => {
      socket.destroy();
      r(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("error", () => done(false));
    socket.connect(port, "127.0.0.1", () => done(true));
  });
}

/** True when a process with this pid exists and is not a zombie awaiting its reaper. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e: unknown) {
    return isErrno(e, "EPERM");
  }
  try {
    // "<pid> (<comm>) <state> …": a zombie (Z) or dead (X) process has already exited.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
  } catch (e: unknown) {
    // ENOENT: it exited just now. Otherwise no procfs (not Linux): kill(pid, 0) is all we know.
    return !(isErrno(e, "ENOENT") && existsSync("/proc/self/stat"));
  }
}

function isErrno(e: unknown, code: string): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === code;
}

function describeExit(info: { code: number | null; signal: NodeJS.Signals | null }): string {
  return info.signal ? `signal ${info.signal}` : `exit code ${info.code}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number): string => (ms / 1000).toFixed(1);
const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
