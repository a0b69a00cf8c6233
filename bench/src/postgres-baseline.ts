// The PostgreSQL baseline of `npm run bench`: a real PostgreSQL server from Debian's
// packages (/usr/lib/postgresql/<version>/bin), initdb'd into a temp dir, started on
// 127.0.0.1 with a free port and its unix socket in that dir, fsync=on and
// synchronous_commit=on, and driven by pgbench (C, so the client costs little CPU) with
// custom scripts: the conditional UPDATE Berth's reserve is compared against, on one
// hot row, on one hot row plus an INSERT of the reservation in the same transaction, and
// on 1,000 rows (a random row per transaction). Closed loop (-c/-j, -T) or fixed rate
// (-R); latencies come from the per-transaction logs (-l), which with -R count from each
// transaction's scheduled start (no coordinated omission).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childPids, procCpuSeconds } from "./probes.js";

/** The directory holding initdb, postgres and pgbench, or a reason why there is none. */
export function findPostgresBin(): { bin: string } | { skip: string } {
  const root = "/usr/lib/postgresql";
  const env = process.env.BERTH_PG_BIN;
  const candidates = env
    ? [env]
    : existsSync(root)
      ? readdirSync(root)
          .filter((v) => /^\d+$/.test(v))
          .sort((a, b) => Number(b) - Number(a))
          .map((v) => join(root, v, "bin"))
      : [];
  for (const bin of candidates) {
    if (["initdb", "postgres", "pgbench", "psql"].every((b) => existsSync(join(bin, b)))) {
      return { bin };
    }
  }
  return {
    skip: `no PostgreSQL server binaries (initdb, postgres, pgbench, psql) under ${env ?? `${root}/*/bin`} (Debian: apt-get install postgresql; or set BERTH_PG_BIN)`,
  };
}

/** A running PostgreSQL server owned by the bench. */
export interface PostgresServer {
  readonly bin: string;
  readonly version: string;
  readonly dir: string;
  readonly port: number;
  /** The unix-socket directory (inside `dir`). */
  readonly socketDir: string;
  /** The postmaster's pid. */
  readonly pid: number;
  /** Runs SQL through psql; returns its stdout (unaligned, tuples only). */
  psql(sql: string): string;
  /** Stops the server (fast shutdown, then SIGKILL) and removes its directory. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

/** initdb refuses to run as root: as root, the server runs as the `postgres` user. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const r = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const g = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  const uid = Number(r.stdout.trim());
  const gid = Number(g.stdout.trim());
  if (r.status !== 0 || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error("running as root and there is no `postgres` user to run PostgreSQL as");
  }
  return { uid, gid };
}

/** Every server started and not yet stopped: killed and removed on exit and on Ctrl-C. */
const live = new Set<PostgresServer>();
const killAll = (): void => {
  for (const s of live) {
    try {
      process.kill(s.pid, "SIGQUIT"); // immediate shutdown
    } catch {}
    rmSync(s.dir, { recursive: true, force: true });
  }
  live.clear();
};
const onSignal = (sig: NodeJS.Signals): void => {
  killAll();
  process.kill(process.pid, sig);
};
function track(s: PostgresServer): void {
  if (live.size === 0) {
    process.on("exit", killAll);
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  }
  live.add(s);
}
function untrack(s: PostgresServer): void {
  if (!live.delete(s) || live.size > 0) return;
  process.off("exit", killAll);
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
}

/** initdb into a fresh temp dir and start the server on loopback. */
export async function startPostgres(
  options: { bin?: string; log?: (line: string) => void } = {},
): Promise<PostgresServer> {
  const found = options.bin ? { bin: options.bin } : findPostgresBin();
  if ("skip" in found) throw new Error(found.skip);
  const bin = found.bin;
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), "berth-bench-pg-"));
  const data = join(dir, "data");
  const socketDir = dir;
  if (user) {
    chownSync(dir, user.uid, user.gid);
    chmodSync(dir, 0o700);
  }
  const spawnOpts = user ? { uid: user.uid, gid: user.gid } : {};
  let child: ChildProcess | undefined;
  try {
    const init = spawnSync(
      join(bin, "initdb"),
      ["-D", data, "-U", "bench", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
      { encoding: "utf8", cwd: dir, ...spawnOpts },
    );
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
    const port = await freePort();
    const version = spawnSync(join(bin, "postgres"), ["--version"], {
      encoding: "utf8",
    }).stdout.trim();
    child = spawn(
      join(bin, "postgres"),
      [
        "-D",
        data,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        `port=${port}`,
        "-c",
        `unix_socket_directories=${socketDir}`,
        "-c",
        "fsync=on",
        "-c",
        "synchronous_commit=on",
        "-c",
        "full_page_writes=on",
        "-c",
        "max_connections=100",
        "-c",
        "logging_collector=off",
      ],
      { cwd: dir, stdio: ["ignore", "ignore", "pipe"], ...spawnOpts },
    );
    const stderr: string[] = [];
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      stderr.push(d);
      if (stderr.length > 200) stderr.shift();
    });
    const pid = child.pid as number;
    const psqlArgs = [
      "-X",
      "-q",
      "-A",
      "-t",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      socketDir,
      "-p",
      String(port),
      "-U",
      "bench",
      "-d",
      "postgres",
    ];
    const psql = (sql: string): string => {
      const r = spawnSync(join(bin, "psql"), psqlArgs, {
        input: sql,
        encoding: "utf8",
        ...spawnOpts,
      });
      if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
      return r.stdout;
    };
    const exited = new Promise<void>((resolve) => child?.once("exit", () => resolve()));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = spawnSync(
        join(bin, "pg_isready"),
        ["-q", "-h", socketDir, "-p", String(port)],
        spawnOpts,
      );
      if (r.status === 0) break;
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`PostgreSQL did not start: ${stderr.join("").slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const c = child;
    const server: PostgresServer = {
      bin,
      version,
      dir,
      port,
      socketDir,
      pid,
      psql,
      stop: async () => {
        untrack(server);
        if (c.exitCode === null && c.signalCode === null) {
          c.kill("SIGINT"); // fast shutdown
          const t = setTimeout(() => c.kill("SIGKILL"), 15_000);
          await exited;
          clearTimeout(t);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
    track(server);
    options.log?.(
      `${version} on 127.0.0.1:${port}, data in ${data}, fsync=on, synchronous_commit=on`,
    );
    return server;
  } catch (e) {
    child?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** The three PostgreSQL scenarios. */
export type PgScript = "hot" | "hot+insert" | "spread";

export const PG_SCRIPTS: Readonly<Record<PgScript, { name: string; text: string }>> = {
  hot: {
    name: "PostgreSQL one hot row",
    text: "\\set units 1\n\\set id 0\nUPDATE pools SET reserved = reserved + :units WHERE id = :id AND reserved + :units <= capacity;\n",
  },
  "hot+insert": {
    name: "PostgreSQL hot row + INSERT",
    text:
      "\\set units 1\n\\set id 0\nBEGIN;\n" +
      "UPDATE pools SET reserved = reserved + :units WHERE id = :id AND reserved + :units <= capacity;\n" +
      "INSERT INTO reservations (pool_id, units, request_id) VALUES (:id, :units, gen_random_uuid());\n" +
      "END;\n",
  },
  spread: {
    name: "PostgreSQL 1,000 rows",
    text: "\\set units 1\n\\set id random(1, 1000)\nUPDATE pools SET reserved = reserved + :units WHERE id = :id AND reserved + :units <= capacity;\n",
  },
};

/** (Re)creates the tables: row 0 is the hot row, rows 1..1000 the spread. */
export function createSchema(pg: PostgresServer): void {
  pg.psql(
    "DROP TABLE IF EXISTS reservations; DROP TABLE IF EXISTS pools;\n" +
      "CREATE TABLE pools (id int PRIMARY KEY, capacity bigint NOT NULL, reserved bigint NOT NULL DEFAULT 0);\n" +
      "CREATE TABLE reservations (request_id uuid PRIMARY KEY, pool_id int NOT NULL REFERENCES pools, units int NOT NULL);\n" +
      "INSERT INTO pools (id, capacity) SELECT g, 1000000000000 FROM generate_series(0, 1000) g;\n" +
      "VACUUM ANALYZE pools;\n",
  );
}

/** What one pgbench cell measured. */
export interface PgbenchResult {
  /** Transactions pgbench reports as processed. */
  readonly transactions: number;
  readonly failed: number;
  readonly seconds: number;
  readonly rate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU seconds of pgbench itself. */
  readonly clientCpuSeconds: number;
  /** CPU seconds of the server: postmaster, its children and reaped backends. */
  readonly serverCpuSeconds: number;
}

/** CPU seconds of the postmaster, its reaped children and its live children. */
function serverCpu(pid: number): { seconds: number; children: number } {
  const own = procCpuSeconds(pid, true) ?? 0;
  const kids = childPids(pid);
  let seconds = own;
  for (const k of kids) seconds += procCpuSeconds(k, false) ?? 0;
  return { seconds, children: kids.length };
}

/** Runs one pgbench cell: closed loop, or fixed `rate` (transactions/s) when given. */
export async function runPgbench(
  pg: PostgresServer,
  o: { script: PgScript; clients: number; seconds: number; rate?: number },
): Promise<PgbenchResult> {
  const work = mkdtempSync(join(pg.dir, "run-"));
  const user = runAs();
  if (user) chownSync(work, user.uid, user.gid);
  try {
    const file = join(work, "script.sql");
    writeFileSync(file, PG_SCRIPTS[o.script].text);
    const threads = Math.min(o.clients, 2);
    const args = [
      "-n",
      "-M",
      "prepared",
      "-f",
      file,
      "-c",
      String(o.clients),
      "-j",
      String(threads),
      "-T",
      String(o.seconds),
      "-l",
      `--log-prefix=${join(work, "tx")}`,
      ...(o.rate !== undefined ? ["-R", String(Math.max(1, Math.round(o.rate)))] : []),
      "-h",
      pg.socketDir,
      "-p",
      String(pg.port),
      "-U",
      "bench",
      "postgres",
    ];
    const before = serverCpu(pg.pid);
    // The shell reports its own stat after waiting for pgbench: its cutime/cstime are
    // pgbench's CPU.
    const child = spawn(
      "sh",
      [
        "-c",
        '"$@"; rc=$?; echo; echo "STAT $(cat /proc/$$/stat)"; exit $rc',
        "sh",
        join(pg.bin, "pgbench"),
        ...args,
      ],
      { cwd: work, stdio: ["ignore", "pipe", "pipe"], ...(user ?? {}) },
    );
    let out = "";
    let err = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      err += d;
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    if (code !== 0)
      throw new Error(`pgbench failed (${code}): ${err.slice(-2000)}${out.slice(-1000)}`);
    // Wait for the backends to exit so their CPU lands in the postmaster's cutime.
    const until = Date.now() + 5000;
    while (childPids(pg.pid).length > before.children && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = serverCpu(pg.pid);
    const statLine = /^STAT (.*)$/m.exec(out)?.[1] ?? "";
    const f = statLine.slice(statLine.lastIndexOf(")") + 2).split(" ");
    const clientCpuSeconds = (Number(f[13]) + Number(f[14])) / 100;
    const transactions = Number(
      /number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? Number.NaN,
    );
    const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
    const latencies: number[] = [];
    let first = Number.POSITIVE_INFINITY;
    let last = 0;
    for (const name of readdirSync(work).filter((n) => n.startsWith("tx"))) {
      for (const line of readFileSync(join(work, name), "utf8").split("\n")) {
        // client_id transaction_no time script_no time_epoch time_us [schedule_lag]
        const p = line.split(" ");
        if (p.length < 6) continue;
        if (p[2] === "skipped" || p[2] === "failed") continue;
        latencies.push(Number(p[2]) / 1000);
        const at = Number(p[4]) + Number(p[5]) / 1e6;
        if (at < first) first = at;
        if (at > last) last = at;
      }
    }
    latencies.sort((a, b) => a - b);
    const q = (x: number): number =>
      latencies[Math.min(latencies.length - 1, Math.floor(x * latencies.length))] ?? 0;
    const seconds = o.seconds;
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]);
    return {
      transactions,
      failed,
      seconds,
      rate: Number.isFinite(tps) ? tps : transactions / seconds,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      clientCpuSeconds,
      serverCpuSeconds: after.seconds - before.seconds,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
