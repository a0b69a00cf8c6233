// Faults of the Cassandra journal, on a real worker process and a real Cassandra node:
//
// 1. Cassandra unreachable when the worker starts: the worker serves gRPC and HTTP, is
//    not ready (/readyz names the reason), answers commands UNAVAILABLE with
//    JOURNAL_UNAVAILABLE and RetryInfo, logs why and retries; once a node answers on
//    that address it takes its shards and becomes ready.
// 2. Cassandra lost mid-run (stopped while reserves run, restarted on the same port and
//    data directory): writes answer errors, never a false success; the worker's /readyz
//    drops naming the journal, a client of the gateway is told UNAVAILABLE with
//    JOURNAL_UNAVAILABLE and RetryInfo, the worker's warnings stay few (summarised, not
//    one per retry); once Cassandra is back /readyz is ready again, every acknowledged
//    reservation is in the journal and new reserves succeed.
// 3. SIGTERM still ends the worker after its driver's connections were cut.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CapacityServiceClient,
  parseRichStatus,
  WorkerServiceClient,
  writeShardMapFile,
} from "@berth/common";
import { startGateway } from "@berth/gateway";
import { REPO_ROOT } from "@berth/local";
import {
  decodeReservationId,
  type internal,
  planShardMap,
  StaticShardMapSource,
  type v1,
} from "@berth/proto";
import { type CassandraNode, freePorts, startCassandra } from "@berth/testing/cassandra";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { pino } from "pino";
import {
  cassandraJournalUrl,
  cassandraSkipReason,
  freshKeyspace,
  openCassandraJournal,
} from "./cassandra-support.js";
import { codeName, eventually } from "./clients.js";

const skip = cassandraSkipReason("the Cassandra fault tests");
const POOL = "faults/pool";
const log = (line: string) => process.stderr.write(`[cassandra] ${line}\n`);

interface WorkerProc {
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLine(what: string, match: (j: Record<string, unknown>) => boolean): Promise<void>;
}

function runWorker(args: string[]): WorkerProc {
  const child = spawn(process.execPath, ["--import", "tsx", "worker/src/main.ts", ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, BERTH_LOG_LEVEL: "info" },
  });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      lines.push(line);
      for (const w of [...waiters]) w();
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  const parsed = (line: string): Record<string, unknown> | undefined => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  };
  return {
    child,
    lines,
    exited,
    waitForLine: (what, match) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!lines.some((l) => match(parsed(l) ?? {}))) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${what}; worker output:\n${lines.join("\n")}`));
        }, 120_000);
        waiters.add(check);
        check();
      }),
  };
}

/** Whether a worker output line is a log record at warn level or above. */
function isWarning(line: string): boolean {
  try {
    const level = (JSON.parse(line) as { level?: unknown }).level;
    return typeof level === "number"
      ? level >= 40
      : ["warn", "error", "fatal"].includes(String(level));
  } catch {
    return false;
  }
}

/**
 * `n` free loopback ports below the kernel's ephemeral range, for the node this file
 * stops and starts again on the same ports: a port from that range may meanwhile become
 * the local port of some outgoing connection (on a busy machine that happened: "port …
 * is already in use" at the restart).
 */
async function portsBelowEphemeralRange(n: number): Promise<number[]> {
  let ephemeralLow = 32768;
  try {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/);
    ephemeralLow = Number(low) || ephemeralLow;
  } catch {
    // Not Linux: keep the IANA default's start.
  }
  const from = 10_000;
  const span = ephemeralLow - from;
  // A random start, so that files probing at the same time seldom pick the same ports.
  const start = Math.floor(Math.random() * span);
  const ports: number[] = [];
  for (let i = 0; i < span && ports.length < n; i++) {
    const port = from + ((start + i) % span);
    if (await canListen(port)) ports.push(port);
  }
  if (ports.length < n) throw new Error(`no ${n} free ports in ${from}..${ephemeralLow - 1}`);
  return ports;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

function call<Res>(
  fn: (
    m: Metadata,
    o: { deadline: number },
    cb: (e: ServiceError | null, r: Res) => void,
  ) => unknown,
  deadlineMs: number,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    fn(new Metadata(), { deadline: Date.now() + deadlineMs }, (e, r) =>
      e ? reject(e) : resolve(r),
    );
  });
}

describe("the Cassandra journal under faults, with a real worker process", { skip }, () => {
  let dir: string;
  let cqlPort: number;
  let storagePort: number;
  let node: CassandraNode | undefined;
  let worker: WorkerProc | undefined;
  let client: WorkerServiceClient | undefined;
  let grpcAddress: string;
  let httpAddress: string;
  let journalUrl: string;
  let shardMap: internal.ShardMap;

  const startNode = async () => {
    node = await startCassandra({
      port: cqlPort,
      storagePort,
      dataDir: join(dir, "cassandra"),
      log,
    });
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "berth-cassandra-faults-"));
    [cqlPort, storagePort] = (await portsBelowEphemeralRange(2)) as [number, number];
    const ports = await freePorts(2);
    grpcAddress = `127.0.0.1:${ports[0]}`;
    httpAddress = `127.0.0.1:${ports[1]}`;
    journalUrl = cassandraJournalUrl(`127.0.0.1:${cqlPort}`, freshKeyspace("faults"));
    const mapFile = join(dir, "shard-map.json");
    shardMap = planShardMap({
      members: [{ id: "worker-0", address: grpcAddress }],
      shardCount: 16,
      quorum: 1,
    });
    await writeShardMapFile(mapFile, shardMap);
    // Nothing listens on cqlPort yet.
    worker = runWorker([
      "--id",
      "worker-0",
      "--grpc",
      grpcAddress,
      "--http",
      httpAddress,
      "--journal",
      journalUrl,
      "--shard-map-file",
      mapFile,
      // No snapshots: the test reads every event back from the journal.
      "--snapshot-every",
      "1000000",
    ]);
    client = new WorkerServiceClient(grpcAddress, credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    if (
      worker !== undefined &&
      worker.child.exitCode === null &&
      worker.child.signalCode === null
    ) {
      worker.child.kill("SIGKILL");
      await worker.exited;
    }
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const reserve = (requestId: string, deadlineMs = 5000) => {
    const c = client as WorkerServiceClient;
    return call<v1.ReserveResponse>(
      (m, o, cb) =>
        c.reserve(
          { request: { pool: POOL, units: 1, requestId }, epoch: 0, callToken: "" },
          m,
          o,
          cb,
        ),
      deadlineMs,
    );
  };

  test("unreachable at start: serving but not ready, says why, answers UNAVAILABLE, then recovers", {
    timeout: 240_000,
  }, async () => {
    const w = worker as WorkerProc;
    let readyz: { status: number; body: { ready: boolean; reason?: string } } | undefined;
    await eventually(
      "/readyz names a failed connection",
      async () => {
        const res = await fetch(`http://${httpAddress}/readyz`).catch(() => undefined);
        if (res === undefined) return false; // not listening yet
        readyz = {
          status: res.status,
          body: (await res.json()) as { ready: boolean; reason?: string },
        };
        return /cannot connect/.test(readyz.body.reason ?? "");
      },
      60_000,
      100,
    );
    assert.equal(readyz?.status, 503);
    assert.equal(readyz?.body.ready, false);
    assert.match(
      readyz?.body.reason ?? "",
      new RegExp(
        `^journal unavailable: cannot connect to Cassandra at 127\\.0\\.0\\.1:${cqlPort} `,
      ),
    );
    console.log(`# /readyz while Cassandra is unreachable: ${JSON.stringify(readyz?.body)}`);

    const failure = parseRichStatus(
      await reserve("before-cassandra").then(
        (r) => assert.fail(`reserve succeeded without a journal: ${JSON.stringify(r)}`),
        (e: unknown) => e,
      ),
    );
    assert.equal(codeName(failure.code), "UNAVAILABLE");
    assert.equal(failure.reason, "JOURNAL_UNAVAILABLE");
    assert.ok(failure.retryDelayMs !== undefined && failure.retryDelayMs > 0, "RetryInfo is sent");
    assert.match(failure.message, /^journal unavailable: cannot connect to Cassandra/);
    // Each failed attempt is logged with its number and the next delay (found by its
    // fields: a log message may be renamed freely).
    await w.waitForLine(
      "a retry log line",
      (j) => typeof j.attempt === "number" && typeof j.retryInMs === "number",
    );

    await startNode();
    await eventually(
      "/readyz answers 200 once Cassandra is up",
      async () => (await fetch(`http://${httpAddress}/readyz`)).status === 200,
      120_000,
      100,
    );
    const attempts = w.lines
      .map((l) => JSON.parse(l) as { attempts?: number })
      .find((j) => typeof j.attempts === "number")?.attempts;
    console.log(`# the worker connected on attempt ${attempts}`);

    const c = client as WorkerServiceClient;
    const configured = await call<internal.ConfigureResponse>(
      (m, o, cb) =>
        c.configure(
          {
            spec: {
              pool: POOL,
              capacity: 1_000_000,
              labels: {},
              window: undefined,
              closed: false,
              generation: 1,
              deleted: false,
            },
            epoch: 0,
          },
          m,
          o,
          cb,
        ),
      10_000,
    );
    assert.equal(configured.pool?.owner, "worker-0");
    assert.equal((await reserve("after-cassandra")).units, 1);
  });

  test("lost mid-run: no acknowledged reservation is lost and service resumes", {
    timeout: 240_000,
  }, async () => {
    const acked = new Map<string, number>(); // requestId → seq
    const outcomes: Record<string, number> = {};
    let phase: "before" | "down" | "after" = "before";
    const perPhase = { before: 0, down: 0, after: 0 };
    let stop = false;
    let n = 0;
    const loop = async (lane: number) => {
      while (!stop) {
        const requestId = `mid-${lane}-${n++}`;
        const during = phase;
        try {
          const r = await reserve(requestId, 3000);
          acked.set(requestId, decodeReservationId(r.reservationId).seq);
          perPhase[during]++;
          outcomes.OK = (outcomes.OK ?? 0) + 1;
        } catch (e: unknown) {
          const s = parseRichStatus(e);
          const key = `${codeName(s.code)}/${s.reason ?? "-"}`;
          outcomes[key] = (outcomes[key] ?? 0) + 1;
          assert.ok(
            s.code === status.UNAVAILABLE || s.code === status.DEADLINE_EXCEEDED,
            `${requestId}: only UNAVAILABLE or DEADLINE_EXCEEDED may fail a reserve, got ${key}: ${s.message}`,
          );
          await sleep(50);
        }
      }
    };
    const w = worker as WorkerProc;
    const readyz = async () => {
      const res = await fetch(`http://${httpAddress}/readyz`);
      return {
        status: res.status,
        body: (await res.json()) as { ready: boolean; reason?: string },
      };
    };
    const gateway = await startGateway({
      grpc: "127.0.0.1:0",
      gossip: "127.0.0.1:0",
      http: "127.0.0.1:0",
      shardMapSource: new StaticShardMapSource(shardMap),
      logger: pino({ level: "silent" }),
    });
    const gatewayClient = new CapacityServiceClient(
      gateway.grpcAddress,
      credentials.createInsecure(),
    );
    const lanes = Array.from({ length: 8 }, (_, i) => loop(i));
    let outage = { warnings: 0, seconds: 0 };
    try {
      await eventually("50 reserves are acknowledged", async () => perPhase.before >= 50, 60_000);
      assert.equal((await readyz()).status, 200);
      phase = "down";
      const linesAtStop = w.lines.length;
      const stoppedAt = Date.now();
      await (node as CassandraNode).stop();
      const unavailableBefore = outcomes["UNAVAILABLE/JOURNAL_UNAVAILABLE"] ?? 0;
      await eventually(
        "reserves answer UNAVAILABLE while Cassandra is down",
        async () => (outcomes["UNAVAILABLE/JOURNAL_UNAVAILABLE"] ?? 0) > unavailableBefore,
        60_000,
      );
      let down: Awaited<ReturnType<typeof readyz>> | undefined;
      await eventually(
        "/readyz drops while the journal is unreachable",
        async () => {
          down = await readyz();
          return down.status === 503;
        },
        60_000,
        100,
      );
      assert.equal(down?.body.ready, false);
      assert.match(down?.body.reason ?? "", /^journal unavailable: /);
      console.log(`# /readyz while Cassandra is down: ${JSON.stringify(down?.body)}`);

      // Through the gateway, the client is told it is the journal, and when to retry.
      const viaGateway = parseRichStatus(
        await call<v1.ReserveResponse>(
          (m, o, cb) =>
            gatewayClient.reserve({ pool: POOL, units: 1, requestId: "via-gateway" }, m, o, cb),
          3000,
        ).then(
          (r) => assert.fail(`reserve succeeded without a journal: ${JSON.stringify(r)}`),
          (e: unknown) => e,
        ),
      );
      assert.equal(codeName(viaGateway.code), "UNAVAILABLE");
      assert.equal(viaGateway.reason, "JOURNAL_UNAVAILABLE");
      assert.ok((viaGateway.retryDelayMs ?? 0) > 0, "RetryInfo reaches the client");
      assert.match(viaGateway.message, /journal unavailable/);
      console.log(`# through the gateway while Cassandra is down: ${viaGateway.message}`);

      await sleep(2000);
      await startNode();
      phase = "after";
      await eventually(
        "/readyz is ready again",
        async () => (await readyz()).status === 200,
        120_000,
        100,
      );
      outage = {
        warnings: w.lines.slice(linesAtStop).filter((l) => isWarning(l)).length,
        seconds: (Date.now() - stoppedAt) / 1000,
      };
      await eventually(
        "50 reserves are acknowledged after the restart",
        async () => perPhase.after >= 50,
        120_000,
      );
    } finally {
      stop = true;
      await Promise.all(lanes);
      gatewayClient.close();
      await gateway.close();
    }
    console.log(
      `# worker warnings during the ${outage.seconds.toFixed(0)} s outage: ${outage.warnings}`,
    );
    const said = (event: string) => w.lines.some((l) => l.includes(`"event":"${event}"`));
    assert.ok(said("journal.down"), "the outage's start is logged");
    assert.ok(said("journal.up"), "the outage's end is logged");
    // Summarised, not one per retry: a few at the outage's start (the journal, the pool),
    // then at most one per pool and one for the journal every 30 s.
    assert.ok(
      outage.warnings <= 6 + 2 * Math.ceil(outage.seconds / 30),
      `${outage.warnings} warnings in ${outage.seconds} s:\n${w.lines.filter((l) => isWarning(l)).join("\n")}`,
    );
    console.log(
      `# outcomes: ${JSON.stringify(outcomes)}; acknowledged per phase: ${JSON.stringify(perPhase)}`,
    );
    // A reserve acknowledged while the node was down can only be one whose append landed
    // just before; it must be in the journal like every other.
    const journal = await openCassandraJournal(journalUrl);
    try {
      const loaded = await journal.load(POOL);
      const bySeq = new Map<number, string>();
      for (const e of loaded.events) {
        const ev = e.event as { type: string; requestId?: string };
        if (ev.type === "reserved" && ev.requestId !== undefined) bySeq.set(e.seq, ev.requestId);
      }
      // No snapshot (--snapshot-every is out of reach): every event is read, seqs 1..version.
      assert.equal(loaded.snapshot, undefined);
      assert.deepEqual(
        loaded.events.map((e) => e.seq),
        Array.from({ length: loaded.version }, (_, i) => i + 1),
      );
      for (const [requestId, seq] of acked) {
        assert.equal(
          bySeq.get(seq),
          requestId,
          `acknowledged ${requestId} is seq ${seq} in the journal`,
        );
      }
      const requestIds = [...bySeq.values()];
      assert.equal(new Set(requestIds).size, requestIds.length, "no request id is written twice");
      console.log(
        `# journal version ${loaded.version}; ${acked.size} acknowledged reserves all found; ${[...bySeq.values()].filter((id) => id.startsWith("mid-") && !acked.has(id)).length} written but unacknowledged (callers got an error and may retry)`,
      );
    } finally {
      await journal.close();
    }
  });

  test("SIGTERM ends the worker after its Cassandra connections were cut", {
    timeout: 60_000,
  }, async () => {
    const w = worker as WorkerProc;
    w.child.kill("SIGTERM");
    const exit = await Promise.race([w.exited, sleep(30_000).then(() => undefined)]);
    assert.ok(
      exit !== undefined,
      `the worker exits within 30 s of SIGTERM:\n${w.lines.slice(-20).join("\n")}`,
    );
    assert.deepEqual(exit, { code: 0, signal: null });
    const forced = w.lines.some((l) => l.includes('"event":"worker.forced_exit"'));
    console.log(
      `# worker exited 0 after SIGTERM${forced ? " (forced: a driver handle stayed open)" : ""}`,
    );
  });
});
