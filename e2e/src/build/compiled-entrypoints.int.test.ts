// The bundles `npm run build` (and so `npm ci`) makes are what a pod or a user's shell
// runs: build them afresh into a scratch directory, then start the compiled worker and
// gateway as plain `node file.js` processes (no tsx anywhere) and drive them with the
// compiled CLI. Catches what only breaks bundled code: a data file read relative to
// import.meta.url, a devDependency imported by product code, a lost side effect.

import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { WorkerServiceClient, writeShardMapFile } from "@berth/common";
import { planShardMap } from "@berth/proto";
import { freePorts } from "@berth/testing/cassandra";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
// Inside the repository, so the bundles' external imports resolve from its node_modules.
mkdirSync(join(repoRoot, ".cache"), { recursive: true });
const out = mkdtempSync(join(repoRoot, ".cache/build-test-"));
const dist = (entry: string) => join(out, entry);
// Children get a clean Node: no loader inherited from the test runner.
const env = { ...process.env, NODE_OPTIONS: "", BERTH_LOG_LEVEL: "info" };
const children: ChildProcess[] = [];

/** Starts a compiled entrypoint and resolves once its /readyz on `http` answers 200. */
async function start(script: string, args: string[], http: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: out,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  for (const s of [child.stdout, child.stderr]) {
    s?.setEncoding("utf8").on("data", (d: string) => {
      output += d;
    });
  }
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${script} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`,
      );
    }
    const ready = await fetch(`http://${http}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [dist("cli/dist/main.js"), ...args], {
    cwd: out,
    env,
    encoding: "utf8",
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

let gatewayAddress = "";

before(async () => {
  const built = spawnSync(process.execPath, [join(repoRoot, "scripts/build.mjs"), "--out", out], {
    cwd: repoRoot,
    env,
    encoding: "utf8",
  });
  assert.equal(built.status, 0, `build failed:\n${built.stdout}${built.stderr}`);

  const [workerGrpc, workerHttp, gatewayGrpc, gatewayGossip, gatewayHttp] = (
    await freePorts(5)
  ).map((p) => `127.0.0.1:${p}`) as [string, string, string, string, string];
  gatewayAddress = gatewayGrpc;
  const mapFile = join(out, "shard-map.json");
  await writeShardMapFile(
    mapFile,
    planShardMap({ members: [{ id: "worker-0", address: workerGrpc }], shardCount: 8, quorum: 1 }),
  );
  await start(
    dist("worker/dist/main.js"),
    [
      ...["--id", "worker-0", "--grpc", workerGrpc, "--http", workerHttp],
      ...["--journal", `sqlite://${join(out, "journal.db")}`, "--shard-map-file", mapFile],
      ...["--gossip-peer", gatewayGossip],
    ],
    workerHttp,
  );
  const worker = new WorkerServiceClient(workerGrpc, credentials.createInsecure());
  try {
    await new Promise((resolve, reject) =>
      worker.configure(
        {
          spec: {
            pool: "default/compiled",
            capacity: 5,
            labels: { zone: "north" },
            window: undefined,
            closed: false,
            generation: 1,
            deleted: false,
          },
          epoch: 0,
        },
        new Metadata(),
        { deadline: Date.now() + 30_000 },
        (e: ServiceError | null, r: unknown) => (e ? reject(e) : resolve(r)),
      ),
    );
  } finally {
    worker.close();
  }
  await start(
    dist("gateway/dist/main.js"),
    [
      ...["--grpc", gatewayGrpc, "--gossip", gatewayGossip, "--http", gatewayHttp],
      ...["--shard-map-file", mapFile, "--node-id", "gateway-0"],
    ],
    gatewayHttp,
  );
});

after(async () => {
  for (const child of children) child.kill("SIGTERM");
  await Promise.all(children.map(exited));
  rmSync(out, { recursive: true, force: true });
});

describe("the compiled entrypoints", () => {
  test("the compiled CLI reserves through the compiled gateway and worker", () => {
    const args = ["--address", gatewayAddress, "--timeout", "30s", "--json"];
    const reserved = cli(["reserve", "default/compiled", "2", "--request-id", "c-1", ...args]);
    assert.equal(reserved.status, 0, reserved.stderr);
    const answer = JSON.parse(reserved.stdout) as {
      pool: string;
      units: number;
      replayed: boolean;
    };
    assert.deepEqual([answer.pool, answer.units, answer.replayed], ["default/compiled", 2, false]);

    const pool = cli(["pool", "default/compiled", ...args]);
    assert.equal(pool.status, 0, pool.stderr);
    assert.match(pool.stdout, /"reserved": 2/);
  });

  test("the compiled CLI answers --help and a bad option without contacting anyone", () => {
    const help = cli(["--help"]);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Usage: berth <command>/);
    const bad = cli(["reserve", "default/compiled", "-3", "--address", "127.0.0.1:1"]);
    assert.deepEqual(bad, {
      status: 2,
      stdout: "",
      stderr:
        'berth: <units> must be an integer from 1 to 1000000, got "-3"\nRun "berth reserve --help" for usage.\n',
    });
  });

  test("the compiled CLI exits quietly when its reader closes the pipe early", () => {
    // `head -c 0` exits at once, long before node has started: every write meets EPIPE.
    const r = spawnSync(
      "sh",
      ["-c", `"${process.execPath}" "$0" --help | head -c 0`, dist("cli/dist/main.js")],
      {
        cwd: out,
        env,
        encoding: "utf8",
      },
    );
    assert.equal(r.stderr, "");
  });

  test("the compiled worker and gateway stop cleanly on SIGTERM", async () => {
    for (const child of children) child.kill("SIGTERM");
    assert.deepEqual(await Promise.all(children.map(exited)), [0, 0]);
  });
});
