import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  clusterClientOptions,
  parseRichStatus,
  readAddressFile,
  WorkerServiceClient,
  writeShardMapFile,
} from "@berth/common";
import { internal, planShardMap, type v1 } from "@berth/proto";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { HandOffPublisher, RecordedWatch } from "./adapters/shard-watch-testkit.js";

const mainScript = fileURLToPath(new URL("./main.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The `event` of a JSON log line (what tests key on; messages may be reworded), if any. */
function eventOf(line: string): unknown {
  try {
    return (JSON.parse(line) as { event?: unknown }).event;
  } catch {
    return undefined;
  }
}

function runWorker(args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", mainScript, ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, BERTH_LOG_LEVEL: "info" },
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  child.stdout.setEncoding("utf8");
  createInterface({ input: child.stdout }).on("line", (line) => lines.push(line));
  // Up means its /healthz answers (never a log line: a message may be renamed freely).
  const http = args[args.indexOf("--http") + 1];
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const listening = (async (): Promise<void> => {
    for (;;) {
      if (gone) {
        throw new Error(
          `worker exited with ${child.exitCode} before serving:\n${stderr}\n${lines.join("\n")}`,
        );
      }
      const up = await fetch(`http://${http}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (up) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return { child, listening, exited, stderr: () => stderr, lines };
}

describe("the worker process", () => {
  test("with port 0 and --address-file it writes the ports it listens on, and serves there", async () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-worker-proc-"));
    const addressFile = join(dir, "worker-0.addresses.json");
    // No ShardMap file yet: a worker starts without one and waits for it.
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        mainScript,
        ...["--id", "worker-0", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        ...["--journal", `sqlite://${join(dir, "journal.db")}`],
        ...["--shard-map-file", join(dir, "shard-map.json"), "--address-file", addressFile],
      ],
      { cwd: repoRoot, stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      let record = await readAddressFile(addressFile);
      while (record === undefined) {
        if (child.exitCode !== null) assert.fail(`worker exited first:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
        record = await readAddressFile(addressFile);
      }
      assert.equal(record.pid, child.pid);
      assert.equal(record.addresses.gossip, undefined);
      for (const address of [record.addresses.grpc, record.addresses.http]) {
        assert.match(address, /^127\.0\.0\.1:[1-9][0-9]*$/);
      }
      const health = await fetch(`http://${record.addresses.http}/healthz`);
      assert.equal(health.status, 200);
      // Without a ShardMap it is up but not ready, and says why.
      const ready = await fetch(`http://${record.addresses.http}/readyz`);
      assert.equal(ready.status, 503);
      const grpcUp = await new Promise<boolean>((resolve) => {
        const socket = createConnection(
          Number(record.addresses.grpc.split(":")[1]),
          "127.0.0.1",
          () => {
            socket.end();
            resolve(true);
          },
        );
        socket.once("error", () => resolve(false));
      });
      assert.ok(grpcUp, `gRPC listens at ${record.addresses.grpc}`);
    } finally {
      child.kill("SIGTERM");
      assert.equal(await exited, 0, stderr);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("it serves, logs where it listens, and exits 0 on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-worker-proc-"));
    let w: ReturnType<typeof runWorker> | undefined;
    try {
      const grpc = `127.0.0.1:${await freePort()}`;
      const http = `127.0.0.1:${await freePort()}`;
      const mapFile = join(dir, "shard-map.json");
      await writeShardMapFile(
        mapFile,
        planShardMap({ members: [{ id: "worker-0", address: grpc }], shardCount: 16, quorum: 1 }),
      );
      w = runWorker([
        "--id",
        "worker-0",
        "--grpc",
        grpc,
        "--http",
        http,
        "--journal",
        `sqlite://${join(dir, "journal.db")}`,
        "--shard-map-file",
        mapFile,
        "--snapshot-every",
        "10",
        "--cluster-id",
        "proc-test",
      ]);
      await w.listening;
      // Live before ready: the line saying where it listens comes once its shards serve.
      const saysWhere = () =>
        w?.lines.some((l) => {
          try {
            const j = JSON.parse(l) as Record<string, unknown>;
            return j.grpc === grpc && j.http === http;
          } catch {
            return false;
          }
        });
      for (let waited = 0; !saysWhere() && waited < 30_000; waited += 50) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(saysWhere(), `a line says where it listens:\n${w.lines.join("\n")}`);

      const deadline = () => ({ deadline: Date.now() + 5000 });
      // A caller of another cluster (or of none) is refused before any handler runs.
      for (const other of [{}, clusterClientOptions("another-cluster")]) {
        const stranger = new WorkerServiceClient(grpc, credentials.createInsecure(), other);
        await assert.rejects(
          new Promise((resolve, reject) =>
            stranger.getPool(
              { request: { pool: "default/proc" }, epoch: 0 },
              new Metadata(),
              deadline(),
              (e, r) => (e ? reject(e) : resolve(r)),
            ),
          ),
          (e: unknown) => {
            const st = parseRichStatus(e);
            assert.equal(st.code, 7, st.message); // PERMISSION_DENIED
            assert.equal(st.reason, "CLUSTER_MISMATCH");
            assert.match(
              st.message,
              /internal calls are taken only from nodes of the same cluster/,
            );
            return true;
          },
        );
        stranger.close();
      }
      const client = new WorkerServiceClient(
        grpc,
        credentials.createInsecure(),
        clusterClientOptions("proc-test"),
      );
      const configured = await new Promise<internal.ConfigureResponse>((resolve, reject) =>
        client.configure(
          {
            spec: {
              pool: "default/proc",
              capacity: 3,
              labels: {},
              window: undefined,
              closed: false,
              generation: 1,
              deleted: false,
            },
            epoch: 0,
          },
          new Metadata(),
          deadline(),
          (e: ServiceError | null, r: internal.ConfigureResponse) => (e ? reject(e) : resolve(r)),
        ),
      );
      assert.equal(configured.pool?.owner, "worker-0");
      const reserved = await new Promise<v1.ReserveResponse>((resolve, reject) =>
        client.reserve(
          {
            request: { pool: "default/proc", units: 2, requestId: "p-1" },
            epoch: 0,
            callToken: "",
          },
          new Metadata(),
          deadline(),
          (e: ServiceError | null, r: v1.ReserveResponse) => (e ? reject(e) : resolve(r)),
        ),
      );
      assert.equal(reserved.units, 2);
      client.close();
      assert.equal((await fetch(`http://${http}/readyz`)).status, 200);

      w.child.kill("SIGTERM");
      assert.equal(await w.exited, 0, w.stderr());
      assert.ok(w.lines.some((l) => eventOf(l) === "worker.exited_cleanly"));
      assert.ok(
        w.lines.some((l) => eventOf(l) === "internal_call.refused"),
        "the refusal is logged",
      );
      // Shutdown is summarised: one line for the 16 shards, none per shard.
      assert.deepEqual(
        w.lines
          .map(eventOf)
          .filter((e) => typeof e === "string" && /^ownership\.(shard_|shutdown_)/.test(e)),
        ["ownership.shutdown_draining", "ownership.shutdown_drained"],
      );
    } finally {
      // A failed assertion must not leave the worker running (it would hold the test open).
      if (w !== undefined && w.child.exitCode === null && w.child.signalCode === null) {
        w.child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("with --hand-off-timeout-ms, SIGTERM makes it leave: it says so, serves until a publisher moved every shard away, then exits 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-worker-leave-"));
    let w: ReturnType<typeof runWorker> | undefined;
    let watch: RecordedWatch | undefined;
    try {
      const grpc = `127.0.0.1:${await freePort()}`;
      const mapFile = join(dir, "shard-map.json");
      // Every shard on the worker; the heir is a member that takes them over.
      let map: internal.ShardMap = {
        revision: 1,
        shardCount: 16,
        quorum: 1,
        members: [
          { id: "worker-0", address: grpc },
          { id: "worker-heir", address: "127.0.0.1:1" },
        ],
        shards: Array.from({ length: 16 }, (_, shard) => ({
          shard,
          owner: "worker-0",
          epoch: 1,
          state: internal.ShardState.SHARD_STATE_ACTIVE,
        })),
      };
      await writeShardMapFile(mapFile, map);
      w = runWorker([
        "--id",
        "worker-0",
        "--grpc",
        grpc,
        "--http",
        `127.0.0.1:${await freePort()}`,
        "--journal",
        `sqlite://${join(dir, "journal.db")}`,
        "--shard-map-file",
        mapFile,
        "--cluster-id",
        "leave-test",
        "--hand-off-timeout-ms",
        "120000",
      ]);
      await w.listening;
      watch = new RecordedWatch(grpc, "leave-test");
      await watch.until("every shard serves", (m) => m.shards.length === 16);

      w.child.kill("SIGTERM");
      const said = await watch.until("it says it is leaving", (m) => m.leaving);
      assert.equal(watch.messages[said]?.shards.length, 16, "it still holds every shard");
      new HandOffPublisher(
        watch,
        "worker-heir",
        () => map,
        async (next) => {
          map = next;
          await writeShardMapFile(mapFile, next);
        },
      );
      assert.equal(await w.exited, 0, w.stderr());
      assert.equal((await watch.ended).code, 0, "the stream ended with OK");
      assert.ok(map.shards.every((s) => s.owner === "worker-heir" && s.epoch === 2));
      const events = w.lines.map(eventOf);
      const leaving = events.indexOf("worker.leaving");
      const movedAway = events.indexOf("worker.moved_away");
      const stopping = events.indexOf("worker.stopping");
      assert.ok(0 <= leaving && leaving < movedAway && movedAway < stopping, w.lines.join("\n"));
    } finally {
      watch?.close();
      if (w !== undefined && w.child.exitCode === null && w.child.signalCode === null) {
        w.child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a journal URL it cannot open is a usage error naming the URL", async () => {
    const w = runWorker([
      "--id",
      "worker-0",
      "--grpc",
      "127.0.0.1:0",
      "--http",
      "127.0.0.1:0",
      "--journal",
      "mysql://db/berth",
      "--shard-map-file",
      "/tmp/none.json",
    ]);
    w.listening.catch(() => undefined);
    assert.equal(await w.exited, 2);
    assert.match(
      w.stderr(),
      /invalid journal URL "mysql:\/\/db\/berth": unsupported scheme "mysql"/,
    );
    assert.match(w.stderr(), /usage: worker/);
  });

  test("a missing required flag is a usage error naming the flag", async () => {
    const w = runWorker(["--id", "worker-0"]);
    w.listening.catch(() => undefined);
    assert.equal(await w.exited, 2);
    assert.match(w.stderr(), /^worker: missing required flag --grpc/);
  });
});
