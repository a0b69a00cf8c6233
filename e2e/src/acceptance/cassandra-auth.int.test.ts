// A worker process against a Cassandra node that requires a login (PasswordAuthenticator):
// the login comes from BERTH_CASSANDRA_USERNAME / BERTH_CASSANDRA_PASSWORD; a wrong
// password leaves the worker up and not ready, with a readable reason on /readyz and
// JOURNAL_UNAVAILABLE on its WorkerService, the password in neither nor in its logs.
// Skipped, with the reason printed, without Java.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseRichStatus, WorkerServiceClient, writeShardMapFile } from "@berth/common";
import { internal, planShardMap } from "@berth/proto";
import { type CassandraNode, freePorts, startCassandra } from "@berth/testing/cassandra";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import cassandra from "cassandra-driver";
import { cassandraSkipReason, freshKeyspace } from "./cassandra-support.js";

const skip = cassandraSkipReason("the Cassandra login tests");
const workerMain = fileURLToPath(new URL("../../../worker/src/main.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const PASSWORD = "right-horse-battery";
const WRONG = "wrong-horse-battery";

interface WorkerProcess {
  readonly http: string;
  readonly grpc: string;
  readonly output: () => string;
  readonly exited: () => boolean;
  stop(): Promise<void>;
}

async function startWorkerProcess(
  dir: string,
  journal: string,
  env: Record<string, string>,
): Promise<WorkerProcess> {
  const [grpcPort, httpPort] = await freePorts(2);
  const grpc = `127.0.0.1:${grpcPort}`;
  const http = `127.0.0.1:${httpPort}`;
  const mapFile = join(dir, `map-${grpcPort}.json`);
  await writeShardMapFile(
    mapFile,
    planShardMap({ members: [{ id: "worker-0", address: grpc }], shardCount: 4, quorum: 1 }),
  );
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      workerMain,
      ...["--id", "worker-0", "--grpc", grpc, "--http", http],
      ...["--journal", journal, "--shard-map-file", mapFile],
    ],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } },
  );
  let output = "";
  let exited = false;
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  const gone = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );
  return {
    http,
    grpc,
    output: () => output,
    exited: () => exited,
    async stop() {
      if (!exited) child.kill("SIGTERM");
      await gone;
    },
  };
}

async function readyz(http: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`http://${http}/readyz`);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** Polls /readyz until `done` holds (the test's own timeout bounds it). */
async function readyzUntil(
  w: WorkerProcess,
  done: (r: { status: number; body: Record<string, unknown> }) => boolean,
): Promise<{ status: number; body: Record<string, unknown> }> {
  for (;;) {
    assert.ok(!w.exited(), `the worker exited:\n${w.output()}`);
    const r = await readyz(w.http).catch(() => undefined);
    if (r !== undefined && done(r)) return r;
    await sleep(200);
  }
}

describe("Cassandra with PasswordAuthenticator", { skip }, () => {
  let node: CassandraNode | undefined;
  let dir: string;
  const workers: WorkerProcess[] = [];
  const journalUrl = (): string =>
    `cassandra://${node?.contactPoint}/${freshKeyspace("login")}?timeoutMs=10000`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "berth-cassandra-login-"));
    node = await startCassandra({
      passwordAuthentication: true,
      log: (line) => process.stderr.write(`[cassandra] ${line}\n`),
    });
    const su = node.superuser;
    assert.ok(su !== undefined);
    const admin = new cassandra.Client({
      contactPoints: [node.contactPoint],
      localDataCenter: node.localDataCenter,
      authProvider: new cassandra.auth.PlainTextAuthProvider(su.username, su.password),
    });
    try {
      await admin.execute(
        `CREATE ROLE IF NOT EXISTS berth WITH PASSWORD = '${PASSWORD}' AND LOGIN = true`,
      );
    } finally {
      await admin.shutdown();
    }
  });

  after(async () => {
    for (const w of workers) await w.stop();
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("with the login from the environment, the worker opens the journal and is ready", async () => {
    const w = await startWorkerProcess(dir, journalUrl(), {
      BERTH_CASSANDRA_USERNAME: "berth",
      BERTH_CASSANDRA_PASSWORD: PASSWORD,
    });
    workers.push(w);
    const r = await readyzUntil(w, (x) => x.status === 200);
    assert.deepEqual(r.body, { ready: true });
    assert.ok(!w.output().includes(PASSWORD), "the password is never logged");
  });

  test("a wrong password: not ready with the reason, JOURNAL_UNAVAILABLE, no crash, no password echoed", async () => {
    const w = await startWorkerProcess(dir, journalUrl(), {
      BERTH_CASSANDRA_USERNAME: "berth",
      BERTH_CASSANDRA_PASSWORD: WRONG,
    });
    workers.push(w);
    const r = await readyzUntil(w, (x) => /password/i.test(String(x.body.reason ?? "")));
    assert.equal(r.status, 503);
    assert.match(
      String(r.body.reason),
      /^journal unavailable: cannot connect to Cassandra at .*Provided username berth and\/or password are incorrect/,
    );
    const client = new WorkerServiceClient(w.grpc, credentials.createInsecure());
    try {
      const e = await new Promise<ServiceError>((resolve) =>
        client.getPool(
          internal.GetPoolRequest.fromPartial({ request: { pool: "default/p" } }),
          new Metadata(),
          { deadline: Date.now() + 10_000 },
          (err) => resolve(err as ServiceError),
        ),
      );
      assert.equal(parseRichStatus(e).reason, "JOURNAL_UNAVAILABLE", e.message);
    } finally {
      client.close();
    }
    assert.ok(!w.exited(), "the worker keeps running, retrying the journal");
    assert.ok(!w.output().includes(WRONG), "the password is never logged");
    assert.ok(!JSON.stringify(r.body).includes(WRONG));
  });

  test("no login at all against a node that requires one: not ready, and the reason says so", async () => {
    const w = await startWorkerProcess(dir, journalUrl(), {});
    workers.push(w);
    const r = await readyzUntil(w, (x) => /auth/i.test(String(x.body.reason ?? "")));
    assert.equal(r.status, 503);
    assert.match(String(r.body.reason), /^journal unavailable: cannot connect to Cassandra at /);
  });
});
