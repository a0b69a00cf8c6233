// Local mode guards: one running cluster per data directory, clusters that never talk
// to each other, ports checked before anything starts, and Ctrl-C at any phase.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { FileShardMapSource } from "@berth/common";
import { openJournal, startWorker } from "@berth/worker";
import { DataDirLockedError, lockDataDir } from "./data-dir.js";
import { type LocalCluster, REPO_ROOT, startLocalCluster } from "./local-cluster.js";
import { checkPortsAvailable, labelPorts, PortUnavailableError } from "./ports.js";

const root = mkdtempSync(join(tmpdir(), "berth-guard-"));
const dirA = join(root, "a");
const POOLS = resolve(REPO_ROOT, "examples/pools.yaml");
let a: LocalCluster;
const clusterOptions = {
  port: 0,
  workers: 2,
  shards: 16,
  pools: [POOLS],
  restartBackoff: { initialMs: 200, maxMs: 1000 },
} as const;

/** The `event` of a JSON log line (what tests key on; messages may be reworded), if any. */
function eventOf(line: string): unknown {
  try {
    return (JSON.parse(line) as { event?: unknown }).event;
  } catch {
    return undefined;
  }
}

before(async () => {
  a = await startLocalCluster({ ...clusterOptions, dataDir: dirA });
});

after(async () => {
  await a?.stop();
  rmSync(root, { recursive: true, force: true });
});

async function eventually(what: string, check: () => boolean | Promise<boolean>, ms = 60_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function listen(): Promise<{ server: Server; port: number }> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once("error", rej);
    server.listen(0, "127.0.0.1", () =>
      res({ server, port: (server.address() as { port: number }).port }),
    );
  });
}

test("a second start on a running cluster's data directory names it and writes nothing", async () => {
  const mapBefore = readFileSync(a.shardMapFile, "utf8");
  await assert.rejects(startLocalCluster({ ...clusterOptions, dataDir: dirA }), (e: unknown) => {
    assert.ok(e instanceof DataDirLockedError, String(e));
    assert.equal(e.holder.pid, process.pid);
    assert.match(
      e.message,
      new RegExp(
        `^${dirA.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is in use by a running Berth cluster \\(pid ${process.pid}, gateway ${a.gatewayAddress}, control ${a.controlAddress}, started .*\\): stop it first`,
      ),
    );
    return true;
  });
  assert.equal(readFileSync(a.shardMapFile, "utf8"), mapBefore, "the ShardMap is untouched");
});

test("a stale lock of a dead supervisor is taken over with a notice; a live one is not", async () => {
  const dir = join(root, "stale");
  const dead = spawn(process.execPath, ["-e", ""]);
  const deadPid = await new Promise<number>((res) =>
    dead.on("exit", () => res(dead.pid as number)),
  );
  await lockDataDir(dir, () => assert.fail("no lock yet")).then((l) => l.release());
  writeFileSync(join(dir, "berth.lock"), JSON.stringify({ pid: deadPid, startedAt: "then" }));
  const notices: (number | undefined)[] = [];
  const lock = await lockDataDir(dir, (previous) => notices.push(previous?.pid));
  assert.deepEqual(notices, [deadPid]);
  assert.equal(JSON.parse(readFileSync(lock.file, "utf8")).pid, process.pid);
  const live = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"]);
  try {
    writeFileSync(lock.file, JSON.stringify({ pid: live.pid, startedAt: "now" }));
    await assert.rejects(
      lockDataDir(dir, () => assert.fail("not stale")),
      {
        name: "DataDirLockedError",
      },
    );
  } finally {
    live.kill("SIGKILL");
  }
});

test("a worker of another cluster pointed at this cluster's peers is refused and pulls nothing", async () => {
  assert.match(a.clusterId, /^[0-9a-f]{16}$/);
  assert.equal(readFileSync(join(dirA, "cluster-id"), "utf8").trim(), a.clusterId);
  const dir = join(root, "intruder");
  const journal = await openJournal(`sqlite://${join(root, "intruder.db")}`);
  const source = new FileShardMapSource(a.shardMapFile);
  await source.ready; // so the pull on start knows this cluster's workers
  const gatewayGossip = a.banner().match(/gossip\s+(127\.0\.0\.1:\d+)/)?.[1];
  const intruder = await startWorker({
    id: "intruder",
    clusterId: "another-cluster",
    grpc: "127.0.0.1:0",
    journal,
    shardMapSource: source,
    gossipPeers: gatewayGossip === undefined ? [] : [gatewayGossip],
    gossip: { antiEntropyIntervalMs: 200 },
  });
  try {
    const failedPulls = async () => {
      const m = await intruder.registry.getSingleMetric("berth_gossip_pulls_failed_total")?.get();
      return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
    };
    await eventually("the intruder's pulls have failed", async () => (await failedPulls()) > 0);
    assert.equal(intruder.replica.size, 0, "nothing was pulled from the other cluster");
    await eventually("a worker of the cluster logs the refusal", () =>
      a.workers.some((w) => {
        const file = join(dirA, "logs", `${w.id}.log`);
        return (
          existsSync(file) &&
          readFileSync(file, "utf8")
            .split("\n")
            .some((l) => eventOf(l) === "internal_call.refused")
        );
      }),
    );
  } finally {
    await intruder.close();
    source.close();
    await journal.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the control endpoint answers 400 with the reason for a malformed pool", async () => {
  const res = await fetch(`http://${a.controlAddress}/shard-of?pool=BAD`);
  assert.equal(res.status, 400);
  assert.match(((await res.json()) as { error: string }).error, /^pool: /);
  const ok = await fetch(`http://${a.controlAddress}/shard-of?pool=shop/kettle-1l-steel`);
  assert.equal(ok.status, 200);
});

test("a taken port stops the start before anything is written, naming the port and --port 0", async () => {
  const { server, port } = await listen();
  const dir = join(root, "clash");
  try {
    await assert.rejects(
      startLocalCluster({ ...clusterOptions, dataDir: dir, controlPort: port }),
      (e: unknown) => {
        assert.ok(e instanceof PortUnavailableError, String(e));
        assert.equal(
          e.message,
          `port ${port}, the control endpoint (--control-port), is already in use (another program, perhaps another Berth cluster, listens there): choose another --port (the other ports derive from it), or --port 0 to use free ports`,
        );
        return true;
      },
    );
    assert.ok(!existsSync(join(dir, "shard-map.json")), "no ShardMap was written");
    assert.ok(!existsSync(join(dir, "berth.lock")), "the lock was released");
    // A derived port names its derivation.
    const free = await listen();
    free.server.close();
    const ports = {
      gateway: { grpc: free.port, gossip: free.port, http: free.port },
      workers: [{ grpc: port, http: free.port }],
      control: free.port,
    };
    await assert.rejects(
      checkPortsAvailable(labelPorts(ports, 50051, false).filter((p) => p.port === port)),
      {
        message: new RegExp(
          `^port ${port}, the worker-0 gRPC \\(--port \\+ 10\\), is already in use`,
        ),
      },
    );
    await assert.rejects(checkPortsAvailable(labelPorts(ports, 50051, false)), {
      message: /is also derived for the gateway gRPC \(--port\)/,
    });
  } finally {
    server.close();
  }
});

test("a restart on the same data directory keeps a manual shard move and releases the lock on stop", async () => {
  const map = a.shardMap();
  const shard = 5;
  const to = a.workers.map((w) => w.id).find((id) => id !== map.shards[shard]?.owner) as string;
  await a.moveShard(shard, to);
  await a.stop();
  assert.ok(!existsSync(join(dirA, "berth.lock")), "stop releases the lock");
  const lines: string[] = [];
  a = await startLocalCluster({
    ...clusterOptions,
    dataDir: dirA,
    logFormat: "json",
    logOutput: (l) => lines.push(l),
  });
  assert.equal(a.shardMap().shards[shard]?.owner, to, "the move is kept");
  assert.ok(
    lines.some((l) => {
      const j = JSON.parse(l) as { event?: string; moves?: number };
      return j.event === "local.kept_manual_moves" && j.moves === 1;
    }),
  );
});

test("npm start waits for an absent Cassandra with progress lines and stops at once on Ctrl-C", async () => {
  const { server, port } = await listen();
  server.close(); // a port where nothing answers
  const dir = join(root, "cassandra-wait");
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      resolve(REPO_ROOT, "local/src/main.ts"),
      "--port",
      "0",
      "--workers",
      "1",
      "--data-dir",
      dir,
      "--journal",
      `cassandra://127.0.0.1:${port}/berth_guard_test`,
      "--log-format",
      "json",
      "--no-watch",
    ],
    { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  const lines: string[] = [];
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout }).on("line", (l) => lines.push(l));
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
  try {
    await eventually("a progress line says it waits for the journal", () =>
      lines.some((l) => eventOf(l) === "local.waiting_for_journal"),
    );
    child.kill("SIGINT");
    const code = await Promise.race([
      exited,
      new Promise<"hung">((res) => setTimeout(() => res("hung"), 30_000).unref()),
    ]);
    assert.equal(code, 130, `exit ${String(code)}; stderr: ${stderr}`);
    assert.match(stderr, /SIGINT received; stopping/);
    assert.match(stderr, /stopped before the cluster was up/);
    assert.ok(!lines.some((l) => eventOf(l) === "local.starting"), "no process was started");
    assert.ok(!existsSync(join(dir, "berth.lock")), "the lock was released");
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
});
