/**
 * A real Kubernetes control plane for tests and developers: etcd + kube-apiserver on
 * 127.0.0.1 with free ports, certificates made with the openssl CLI, RBAC, a kubeconfig per
 * component, `restartApiServer()`, and no orphan processes even if this process is killed.
 * See README.md in this directory.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import {
  createCertificateAuthority,
  issueCertificate,
  OpensslError,
  openssl,
} from "@berth/common/testing";
import { ApiException, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { ensureKubernetesBinaries } from "./build.js";
import { CONTROL_PLANE_COMMANDS } from "./build-config.js";
import {
  apiServerArgs,
  apiServerSans,
  clientSubject,
  etcdArgs,
  failingReadyzChecks,
  kubeconfigYaml,
  type PkiPaths,
} from "./control-plane-config.js";

const execFileAsync = promisify(execFile);
const LOG_TAIL_LINES = 40;

/** Thrown when etcd or kube-apiserver cannot be started (exited, timed out, no openssl, …). */
export class ControlPlaneStartError extends Error {
  override readonly name = "ControlPlaneStartError";
  constructor(
    message: string,
    /** The log of the component that failed, if it was started. */
    readonly logFile: string | undefined,
    /** Its last lines. */
    readonly logTail: readonly string[] = [],
  ) {
    super(
      logTail.length
        ? `${message}\n--- last ${logTail.length} lines of ${logFile} ---\n${logTail.join("\n")}`
        : message,
    );
  }
}

/** Options of {@link startControlPlane}. */
export interface ControlPlaneOptions {
  /** Progress lines; default stderr with a `[kubernetes] ` prefix. */
  readonly log?: (line: string) => void;
  /** Working dir (PKI, kubeconfigs, etcd data, logs); default a new temp dir removed by stop(). */
  readonly dataDir?: string;
  /** Keep a temp `dataDir` after stop(). */
  readonly keepDataDir?: boolean;
  /** Use these binaries instead of building/reusing them with ensureKubernetesBinaries(). */
  readonly binaries?: {
    readonly etcd: string;
    readonly kubeApiServer: string;
    readonly kubectl: string;
  };
  /** Extra kube-apiserver flags (e.g. `--feature-gates=…`). */
  readonly apiServerArgs?: readonly string[];
  /** How long to wait for etcd health and for /readyz; default 120 000 ms each. */
  readonly startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL; default 20 000 ms. */
  readonly stopTimeoutMs?: number;
}

/** Options of {@link ControlPlane.serviceAccountKubeconfig}. */
export interface ServiceAccountKubeconfigOptions {
  readonly namespace: string;
  readonly name: string;
  /** Token lifetime; default 3600 s (the API server's minimum is 600). */
  readonly expirationSeconds?: number;
  /**
   * Bind the token to this Pod (which must exist and run as the ServiceAccount): the
   * API server then rejects it once the Pod is gone, and puts the Pod's name and uid in
   * the user's extra info (`authentication.kubernetes.io/pod-name`, `…/pod-uid`), as
   * for a token the kubelet mounts.
   */
  readonly boundPod?: { readonly name: string; readonly uid: string };
  /** Where to write it; default `<dataDir>/kubeconfigs/sa-<namespace>-<name>[-pod-<pod>].kubeconfig`. */
  readonly file?: string;
}

/** Result of {@link ControlPlane.kubectl}. */
export interface KubectlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A running etcd + kube-apiserver on 127.0.0.1. */
export interface ControlPlane {
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  readonly apiServerPort: number;
  readonly etcdClientPort: number;
  readonly dataDir: string;
  /** CA certificate (PEM file) clients must trust. */
  readonly caFile: string;
  /** Kubeconfig of the harness's admin user (group system:masters): for the harness and test setup only. */
  readonly adminKubeconfig: string;
  /** Absolute paths of the project-built binaries. */
  readonly binaries: {
    readonly etcd: string;
    readonly kubeApiServer: string;
    readonly kubectl: string;
  };
  /** etcd and kube-apiserver logs. */
  readonly logFiles: { readonly etcd: string; readonly apiServer: string };
  /** Current pids (kube-apiserver's changes on restart; undefined while it is down). */
  pids(): { readonly etcd: number | undefined; readonly apiServer: number | undefined };
  /** Resident memory of each process now, in bytes (Linux /proc), undefined if not running. */
  rssBytes(): { readonly etcd: number | undefined; readonly apiServer: number | undefined };
  /** A @kubernetes/client-node KubeConfig loaded from `file` (default the admin kubeconfig). */
  kubeConfig(file?: string): KubeConfig;
  /**
   * Writes a kubeconfig authenticating with a new client certificate for `user` in `groups`
   * (one per component: e.g. `system:kube-controller-manager`), returns its path.
   */
  clientCertKubeconfig(user: string, groups?: readonly string[]): Promise<string>;
  /**
   * Creates the ServiceAccount if missing, gets a token for it through the TokenRequest API
   * and writes a kubeconfig using it (least-privilege tests); returns its path. RBAC for it
   * is up to the caller.
   */
  serviceAccountKubeconfig(options: ServiceAccountKubeconfigOptions): Promise<string>;
  /** Runs the project-built kubectl (default: with the admin kubeconfig). Never rejects on a non-zero exit. */
  kubectl(
    args: readonly string[],
    options?: { readonly kubeconfig?: string },
  ): Promise<KubectlResult>;
  /**
   * Compacts etcd's history up to its current revision, as kube-apiserver does every
   * `--etcd-compaction-interval`: a watch or list from an older resourceVersion that is
   * served by etcd (not by the watch cache) then fails with 410 Gone. Returns the revision.
   */
  compactEtcd(): Promise<number>;
  /**
   * Stops kube-apiserver (SIGTERM) and starts it again on the same port against the same
   * etcd; resolves when /readyz is ok. `downMs` keeps it stopped at least that long, for
   * tests that need an outage longer than some deadline (a bare restart can be quicker).
   */
  restartApiServer(options?: { readonly downMs?: number }): Promise<void>;
  /** Stops kube-apiserver, then etcd, then removes a temp data dir; idempotent. */
  stop(): Promise<void>;
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[kubernetes] ${line}\n`);
};

/**
 * Builds or reuses the binaries, makes certificates, starts etcd then kube-apiserver on free
 * loopback ports and resolves once `/readyz` answers ok. Every process is killed when this
 * process exits, and by a watchdog if this process is killed outright.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = options.log ?? defaultLog;
  const binaries =
    options.binaries ??
    (await (async () => {
      const { paths } = await ensureKubernetesBinaries({ commands: CONTROL_PLANE_COMMANDS, log });
      return {
        etcd: paths.etcd as string,
        kubeApiServer: paths["kube-apiserver"] as string,
        kubectl: paths.kubectl as string,
      };
    })());
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = resolve(options.dataDir ?? (await mkdtemp(join(tmpdir(), "berth-k8s-"))));
  const removeDataDir = ownsDataDir && !options.keepDataDir;
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 20_000;
  const dirs = {
    pki: join(dataDir, "pki"),
    kubeconfigs: join(dataDir, "kubeconfigs"),
    logs: join(dataDir, "logs"),
    etcd: join(dataDir, "etcd"),
    certDir: join(dataDir, "apiserver-certs"),
  };
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true });
  const apiServerPidFile = join(dataDir, "kube-apiserver.pid");
  const logFiles = {
    etcd: join(dirs.logs, "etcd.log"),
    apiServer: join(dirs.logs, "kube-apiserver.log"),
  };
  const started = Date.now();

  let etcd: Daemon | undefined;
  let apiServer: Daemon | undefined;
  const cleanup = async (): Promise<void> => {
    await apiServer?.stop(stopTimeoutMs);
    await etcd?.stop(stopTimeoutMs);
    if (removeDataDir) await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const pki = await makePki(dirs.pki);
    const admin = await makeClientCert(dirs.pki, pki, "berth-harness-admin", ["system:masters"]);
    log(`certificates ready in ${dirs.pki} (${secs(Date.now() - started)} s)`);

    let etcdClientPort = 0;
    for (let attempt = 1; ; attempt++) {
      const [client, peer] = await freePorts(2);
      etcdClientPort = client as number;
      etcd = startDaemon({
        name: "etcd",
        bin: binaries.etcd,
        args: etcdArgs({
          dataDir: dirs.etcd,
          clientPort: client as number,
          peerPort: peer as number,
        }),
        logFile: logFiles.etcd,
        cwd: dataDir,
        // etcd's watchdog stops etcd only after kube-apiserver is gone, then removes the dir.
        ...(removeDataDir ? { removeDirOnOrphan: dataDir } : {}),
        waitForPidFile: apiServerPidFile,
        log,
      });
      try {
        await waitFor({
          what: "etcd",
          daemon: etcd,
          timeoutMs,
          log,
          check: async () => ((await etcdHealthy(client as number)) ? "ok" : "not healthy yet"),
        });
        break;
      } catch (e: unknown) {
        const retry = attempt < 3 && (await logMentionsPortRace(logFiles.etcd));
        await etcd.stop(stopTimeoutMs);
        if (!retry) throw e;
        await rm(dirs.etcd, { recursive: true, force: true });
        log("a port was taken before etcd could bind it; retrying with new ports");
      }
    }
    log(`etcd ready on 127.0.0.1:${etcdClientPort} (${secs(Date.now() - started)} s)`);

    const readyz = (port: number) => (): Promise<string> =>
      httpsGet(port, "/readyz?verbose", pki.caCert, admin).then(({ status, body }) =>
        status === 200
          ? "ok"
          : `not ready (HTTP ${status}; failing: ${failingReadyzChecks(body).join(", ") || "?"})`,
      );
    const launchApiServer = (port: number): Daemon => {
      const d = startDaemon({
        name: "kube-apiserver",
        bin: binaries.kubeApiServer,
        args: apiServerArgs({
          etcdClientPort,
          securePort: port,
          certDir: dirs.certDir,
          pki,
          ...(options.apiServerArgs ? { extraArgs: options.apiServerArgs } : {}),
        }),
        logFile: logFiles.apiServer,
        cwd: dataDir,
        pidFile: apiServerPidFile,
        log,
      });
      return d;
    };
    let apiServerPort = 0;
    for (let attempt = 1; ; attempt++) {
      apiServerPort = (await freePorts(1))[0] as number;
      apiServer = launchApiServer(apiServerPort);
      try {
        await waitFor({
          what: "kube-apiserver /readyz",
          daemon: apiServer,
          timeoutMs,
          log,
          check: readyz(apiServerPort),
        });
        break;
      } catch (e: unknown) {
        const retry = attempt < 3 && (await logMentionsPortRace(logFiles.apiServer));
        await apiServer.stop(stopTimeoutMs);
        if (!retry) throw e;
        log("a port was taken before kube-apiserver could bind it; retrying with a new port");
      }
    }
    const server = `https://127.0.0.1:${apiServerPort}`;
    const caPem = await readFile(pki.caCert, "utf8");
    const adminKubeconfig = join(dirs.kubeconfigs, "admin.kubeconfig");
    await writeFile(
      adminKubeconfig,
      kubeconfigYaml({ name: "berth-harness-admin", server, caPem, user: admin }),
      { mode: 0o600 },
    );
    log(
      `kube-apiserver ready at ${server} (${secs(Date.now() - started)} s); admin kubeconfig ${adminKubeconfig}`,
    );

    let stopping: Promise<void> | undefined;
    let stopRequested = false;
    let restarting: Promise<void> | undefined;
    const plane: ControlPlane = {
      server,
      apiServerPort,
      etcdClientPort,
      dataDir,
      caFile: pki.caCert,
      adminKubeconfig,
      binaries,
      logFiles,
      pids: () => ({
        etcd: etcd?.alive() ? etcd.pid : undefined,
        apiServer: apiServer?.alive() ? apiServer.pid : undefined,
      }),
      rssBytes: () => ({
        etcd: etcd?.alive() ? rssOf(etcd.pid) : undefined,
        apiServer: apiServer?.alive() ? rssOf(apiServer.pid) : undefined,
      }),
      kubeConfig: (file = adminKubeconfig) => {
        const kc = new KubeConfig();
        kc.loadFromFile(file);
        return kc;
      },
      clientCertKubeconfig: async (user, groups = []) => {
        const cert = await makeClientCert(dirs.pki, pki, user, groups);
        const file = join(dirs.kubeconfigs, `${user.replace(/[^A-Za-z0-9._-]/g, "_")}.kubeconfig`);
        await writeFile(file, kubeconfigYaml({ name: user, server, caPem, user: cert }), {
          mode: 0o600,
        });
        return file;
      },
      serviceAccountKubeconfig: async (o) => {
        const core = plane.kubeConfig().makeApiClient(CoreV1Api);
        try {
          await core.createNamespacedServiceAccount({
            namespace: o.namespace,
            body: { metadata: { name: o.name, namespace: o.namespace } },
          });
        } catch (e: unknown) {
          if (!(e instanceof ApiException && e.code === 409)) throw e;
        }
        const tr = await core.createNamespacedServiceAccountToken({
          namespace: o.namespace,
          name: o.name,
          body: {
            spec: {
              audiences: [],
              expirationSeconds: o.expirationSeconds ?? 3600,
              ...(o.boundPod
                ? { boundObjectRef: { apiVersion: "v1", kind: "Pod", ...o.boundPod } }
                : {}),
            },
          },
        });
        const token = tr.status?.token;
        if (!token) throw new Error(`TokenRequest for ${o.namespace}/${o.name} returned no token`);
        const bound = o.boundPod ? `-pod-${o.boundPod.name}` : "";
        const file =
          o.file ?? join(dirs.kubeconfigs, `sa-${o.namespace}-${o.name}${bound}.kubeconfig`);
        await writeFile(
          file,
          kubeconfigYaml({
            name: `system:serviceaccount:${o.namespace}:${o.name}`,
            server,
            caPem,
            user: { token },
            namespace: o.namespace,
          }),
          { mode: 0o600 },
        );
        return file;
      },
      kubectl: async (args, o = {}) => {
        try {
          const pending = execFileAsync(
            binaries.kubectl,
            ["--kubeconfig", o.kubeconfig ?? adminKubeconfig, ...args],
            { encoding: "utf8", maxBuffer: 64 << 20 },
          );
          // No stdin: without credentials kubectl would otherwise prompt and wait forever.
          pending.child.stdin?.end();
          const { stdout, stderr } = await pending;
          return { code: 0, stdout, stderr };
        } catch (e: unknown) {
          const x = e as { code?: unknown; stdout?: string; stderr?: string; message: string };
          if (typeof x.code !== "number") throw e;
          return { code: x.code, stdout: x.stdout ?? "", stderr: x.stderr ?? x.message };
        }
      },
      compactEtcd: async () => {
        const call = async (endpoint: string, body: object): Promise<unknown> => {
          const res = await fetch(`http://127.0.0.1:${etcdClientPort}/v3/kv/${endpoint}`, {
            method: "POST",
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(10_000),
          });
          if (!res.ok) throw new Error(`etcd ${endpoint}: HTTP ${res.status} ${await res.text()}`);
          return res.json();
        };
        // etcd's JSON gateway: int64 fields are strings, keys base64.
        const range = (await call("range", { key: btoa("/"), count_only: true })) as {
          header: { revision: string };
        };
        await call("compaction", { revision: range.header.revision, physical: true });
        return Number(range.header.revision);
      },
      restartApiServer: (options = {}) => {
        if (stopRequested) return Promise.reject(new Error("the control plane is stopping"));
        const downMs = options.downMs ?? 0;
        if (!Number.isFinite(downMs) || downMs < 0) {
          return Promise.reject(new RangeError(`downMs must be >= 0, got ${downMs}`));
        }
        restarting ??= (async () => {
          const t0 = Date.now();
          await apiServer?.stop(stopTimeoutMs);
          if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
          log(`kube-apiserver stopped; starting it again on port ${apiServerPort}`);
          apiServer = launchApiServer(apiServerPort);
          await waitFor({
            what: "kube-apiserver /readyz",
            daemon: apiServer,
            timeoutMs,
            log,
            check: readyz(apiServerPort),
          });
          log(`kube-apiserver ready again after ${secs(Date.now() - t0)} s`);
        })().finally(() => {
          restarting = undefined;
        });
        return restarting;
      },
      stop: () => {
        stopRequested = true;
        stopping ??= (async () => {
          await restarting?.catch(() => undefined);
          await cleanup();
        })();
        return stopping;
      },
    };
    return plane;
  } catch (e: unknown) {
    await apiServer?.stop(stopTimeoutMs).catch(() => undefined);
    await etcd?.stop(stopTimeoutMs).catch(() => undefined);
    if (e instanceof ControlPlaneStartError) {
      log(`start failed; data dir kept for inspection: ${dataDir}`);
      throw e;
    }
    if (removeDataDir) await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
}

// ---------------------------------------------------------------- certificates

/** Runs `make` and reports an openssl failure as the control plane failing to start. */
async function withOpenssl<T>(make: () => Promise<T>): Promise<T> {
  try {
    return await make();
  } catch (e: unknown) {
    if (e instanceof OpensslError) throw new ControlPlaneStartError(e.message, undefined);
    throw e;
  }
}

async function makePki(dir: string): Promise<PkiPaths> {
  const p = (f: string): string => join(dir, f);
  return withOpenssl(async () => {
    const ca = await createCertificateAuthority(dir, "ca", "berth-test-ca");
    await issueCertificate(ca, {
      dir,
      name: "apiserver",
      subject: "/CN=kube-apiserver",
      usage: "server",
      sans: apiServerSans(),
    });
    await openssl(
      ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", p("sa.key")],
      dir,
    );
    await openssl(["pkey", "-in", p("sa.key"), "-pubout", "-out", p("sa.pub")], dir);
    return {
      caCert: ca.cert,
      caKey: ca.key,
      apiServerCert: p("apiserver.crt"),
      apiServerKey: p("apiserver.key"),
      serviceAccountKey: p("sa.key"),
      serviceAccountPub: p("sa.pub"),
    };
  });
}

async function makeClientCert(
  dir: string,
  pki: PkiPaths,
  user: string,
  groups: readonly string[],
): Promise<{ clientCertificatePem: string; clientKeyPem: string }> {
  const issued = await withOpenssl(() =>
    issueCertificate(
      { cert: pki.caCert, key: pki.caKey },
      {
        dir,
        name: `client-${user.replace(/[^A-Za-z0-9._-]/g, "_")}`,
        subject: clientSubject(user, groups),
        usage: "client",
      },
    ),
  );
  return {
    clientCertificatePem: await readFile(issued.cert, "utf8"),
    clientKeyPem: await readFile(issued.key, "utf8"),
  };
}

// ---------------------------------------------------------------- processes

/** A process started by {@link startDaemon}. */
export interface Daemon {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  readonly logStart: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves once it has exited. */
  stop(timeoutMs: number): Promise<void>;
}

interface LiveEntry {
  child: ChildProcess;
  watchdog: ChildProcess | undefined;
  /** Stop order on exit: kube-apiserver (0) before etcd (1). */
  rank: number;
  removeDir: string | undefined;
}
const live = new Set<LiveEntry>();

/**
 * Starts a long-running process in its own process group, logging to `logFile`; it is
 * SIGKILLed when this process exits and stopped by a watchdog if this process is killed.
 */
export function startDaemon(o: {
  name: string;
  bin: string;
  args: string[];
  logFile: string;
  cwd: string;
  pidFile?: string;
  waitForPidFile?: string;
  removeDirOnOrphan?: string;
  log: (line: string) => void;
}): Daemon {
  let logStart = 0;
  try {
    logStart = readFileSync(o.logFile).length;
  } catch {}
  const fd = openSync(o.logFile, "a");
  let child: ChildProcess;
  try {
    // Own process group: a terminal's Ctrl-C reaches only us, and we stop in order.
    child = spawn(o.bin, o.args, { cwd: o.cwd, stdio: ["ignore", fd, fd], detached: true });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new ControlPlaneStartError(`could not run ${o.name} (${o.bin})`, undefined);
  }
  child.on("error", () => undefined);
  if (o.pidFile) writeFileSyncSafe(o.pidFile, String(pid));
  const entry: LiveEntry = {
    child,
    watchdog: startWatchdog(pid, o.waitForPidFile, o.removeDirOnOrphan),
    rank: o.name === "etcd" ? 1 : 0,
    removeDir: o.removeDirOnOrphan,
  };
  live.add(entry);
  installExitHooks();
  child.unref();
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let stopping: Promise<void> | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => {
      exitInfo = { code, signal };
      entry.watchdog?.kill("SIGKILL");
      entry.watchdog = undefined;
      live.delete(entry);
      if (!stopping)
        o.log(
          `${o.name} (pid ${pid}) exited (${signal ?? `code ${code}`}) on its own; see ${o.logFile}`,
        );
      r(exitInfo);
    }),
  );
  o.log(`started ${o.name} (pid ${pid}), log ${o.logFile}`);
  return {
    name: o.name,
    pid,
    logFile: o.logFile,
    logStart,
    exited,
    alive: () => exitInfo === undefined,
    stop: (timeoutMs) => {
      stopping ??= (async () => {
        if (exitInfo) return;
        child.kill("SIGTERM");
        // A cleared timer: a pending one would keep this process alive for timeoutMs.
        let timer: NodeJS.Timeout | undefined;
        const done = await Promise.race([
          exited,
          new Promise<undefined>((r) => {
            timer = setTimeout(() => r(undefined), timeoutMs);
          }),
        ]);
        clearTimeout(timer);
        if (!done) {
          o.log(`${o.name} (pid ${pid}) ignored SIGTERM for ${timeoutMs} ms; sending SIGKILL`);
          child.kill("SIGKILL");
          await exited;
        }
      })();
      return stopping;
    },
  };
}

function writeFileSyncSafe(file: string, text: string): void {
  try {
    writeFileSync(file, text);
  } catch {}
}

/**
 * A detached `sh` holding the read end of a pipe from us: when this process dies in any
 * way (even SIGKILL) the pipe closes and `read` returns. It then waits (up to 15 s) for
 * the pid in `waitForPidFile` to exit — so etcd outlives kube-apiserver, which otherwise
 * hangs on SIGTERM — stops its process (SIGTERM, SIGKILL after 10 s) and removes `removeDir`.
 */
function startWatchdog(
  pid: number,
  waitForPidFile: string | undefined,
  removeDir: string | undefined,
): ChildProcess | undefined {
  const script =
    "read _ignored; " +
    'if [ -n "$2" ] && [ -f "$2" ]; then d=$(cat "$2"); i=0; ' +
    'while [ -n "$d" ] && kill -0 "$d" 2>/dev/null && [ "$i" -lt 150 ]; do sleep 0.1; i=$((i+1)); done; fi; ' +
    'kill -TERM "$1" 2>/dev/null; i=0; ' +
    'while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ' +
    'kill -KILL "$1" 2>/dev/null; ' +
    'if [ -n "$3" ]; then rm -rf "$3"; fi; exit 0';
  try {
    const watchdog = spawn(
      "/bin/sh",
      ["-c", script, "berth-k8s-watchdog", String(pid), waitForPidFile ?? "", removeDir ?? ""],
      { stdio: ["pipe", "ignore", "ignore"], detached: true },
    );
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
/** Kill every process we started when this process exits or dies of a signal. */
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
  const entries = [...live].sort((a, b) => a.rank - b.rank);
  for (const e of entries) {
    try {
      e.child.kill("SIGKILL");
    } catch {}
    try {
      e.watchdog?.kill("SIGKILL");
    } catch {}
  }
  for (const e of entries) {
    if (e.removeDir) {
      try {
        rmSync(e.removeDir, { recursive: true, force: true });
      } catch {}
    }
  }
  live.clear();
}

// ---------------------------------------------------------------- waiting

/** Polls `check` until it returns "ok"; throws ControlPlaneStartError with the log tail if the daemon exits or time runs out. */
export async function waitFor(w: {
  what: string;
  daemon: Daemon;
  timeoutMs: number;
  log: (line: string) => void;
  check: () => Promise<string>;
}): Promise<void> {
  const started = Date.now();
  let lastNotice = started;
  let last = "no answer yet";
  for (;;) {
    if (!w.daemon.alive()) {
      const info = await w.daemon.exited;
      throw new ControlPlaneStartError(
        `${w.daemon.name} exited while waiting for ${w.what} (${info.signal ?? `exit code ${info.code}`})`,
        w.daemon.logFile,
        await logTail(w.daemon.logFile, w.daemon.logStart),
      );
    }
    try {
      last = await w.check();
      if (last === "ok") return;
    } catch (e: unknown) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() - started > w.timeoutMs) {
      throw new ControlPlaneStartError(
        `timed out after ${w.timeoutMs} ms waiting for ${w.what}: ${last}`,
        w.daemon.logFile,
        await logTail(w.daemon.logFile, w.daemon.logStart),
      );
    }
    if (Date.now() - lastNotice >= 5000) {
      lastNotice = Date.now();
      w.log(`waiting for ${w.what} (${secs(Date.now() - started)} s): ${last}`);
    }
    await sleep(200);
  }
}

async function etcdHealthy(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(3000) });
  const body = (await res.json()) as { health?: unknown };
  return res.ok && body.health === "true";
}

function httpsGet(
  port: number,
  path: string,
  caFile: string,
  cred: { clientCertificatePem: string; clientKeyPem: string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "GET",
        ca: readFileSync(caFile),
        cert: cred.clientCertificatePem,
        key: cred.clientKeyPem,
        timeout: 5000,
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolvePromise({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end();
  });
}

async function logMentionsPortRace(file: string): Promise<boolean> {
  const text = await readFile(file, "utf8").catch(() => "");
  return /address already in use/i.test(text.slice(-20_000));
}

async function logTail(file: string, from: number): Promise<string[]> {
  const text = (await readFile(file).catch(() => Buffer.alloc(0))).subarray(from).toString("utf8");
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(-LOG_TAIL_LINES)
    .map((l) => (l.length > 400 ? `${l.slice(0, 400)} …` : l));
}

/** Reserves `n` distinct free TCP ports on 127.0.0.1 (bound together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((r, j) => {
        s.once("error", j);
        s.listen(0, "127.0.0.1", () => r());
      });
      const addr = s.address();
      if (addr && typeof addr === "object") ports.push(addr.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** Resident memory of `pid` in bytes (Linux /proc), undefined if it is not running. */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number): string => (ms / 1000).toFixed(1);
