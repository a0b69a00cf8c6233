import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createServer } from "node:net";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import cassandra from "cassandra-driver";
import {
  CassandraStartError,
  ensureCassandraJars,
  isAlive,
  startCassandra,
} from "./cassandra-node.js";

// These tests run a real Cassandra JVM. Without Java they cannot, and say so (a wrong Java
// version is not a reason to skip: startCassandra then fails with a clear message).
const java =
  process.env.BERTH_CASSANDRA_JAVA ||
  (process.env.JAVA_HOME ? `${process.env.JAVA_HOME}/bin/java` : "java");
const javaMissing = spawnSync(java, ["-version"]).error !== undefined;
const skip = javaMissing
  ? `"${java}" is not runnable: install Java 17 (and Maven, for the first fetch) to run the real-Cassandra tests`
  : false;
if (skip) console.log(`# SKIP cassandra harness tests: ${skip}`);

const TIMEOUT = 15 * 60_000;

async function waitUntilGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return !isAlive(pid);
}

test("a started node answers CQL, applies a lightweight transaction once, and leaves no JVM after stop", {
  skip,
  timeout: TIMEOUT,
}, async (t) => {
  const node = await startCassandra();
  t.after(() => node.stop());
  assert.equal(node.contactPoint, `127.0.0.1:${node.port}`);
  assert.equal(isAlive(node.pid), true);

  const client = new cassandra.Client({
    contactPoints: [node.contactPoint],
    localDataCenter: node.localDataCenter,
  });
  try {
    await client.connect();
    const local = await client.execute("SELECT release_version FROM system.local");
    assert.match(String(local.first()?.get("release_version")), /^5\.0\./);
    await client.execute(
      "CREATE KEYSPACE harness WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
    );
    await client.execute("CREATE TABLE harness.claims (id text PRIMARY KEY, owner text)");
    const insert = "INSERT INTO harness.claims (id, owner) VALUES (?, ?) IF NOT EXISTS";
    const first = await client.execute(insert, ["slot-1", "alice"], { prepare: true });
    assert.equal(first.first()?.get("[applied]"), true);
    const second = await client.execute(insert, ["slot-1", "bob"], { prepare: true });
    assert.equal(second.first()?.get("[applied]"), false);
    assert.equal(second.first()?.get("owner"), "alice");
    const read = await client.execute("SELECT owner FROM harness.claims WHERE id = ?", ["slot-1"], {
      prepare: true,
      consistency: cassandra.types.consistencies.serial,
    });
    assert.equal(read.first()?.get("owner"), "alice");
  } finally {
    await client.shutdown();
  }

  await node.stop();
  assert.equal(isAlive(node.pid), false, `JVM pid ${node.pid} still exists after stop()`);
  assert.equal(existsSync(node.dataDir), false, "the temp data dir is removed by stop()");
  await node.stop(); // idempotent
});

test("a node that cannot start fails with the reason and the end of its log, and leaves no JVM", {
  skip,
  timeout: TIMEOUT,
}, async () => {
  let pid: number | undefined;
  const error = await startCassandra({
    yaml: { commitlog_sync: null }, // a required setting: Cassandra refuses to start
    log: (line) => {
      const m = /\(pid (\d+)\)/.exec(line);
      if (m) pid = Number(m[1]);
    },
  }).then(
    () => assert.fail("startCassandra resolved without commitlog_sync"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof CassandraStartError, String(error));
  assert.equal(error.name, "CassandraStartError");
  assert.match(
    error.message,
    /^Cassandra exited during startup \(exit code \d+\); data dir kept: /,
  );
  assert.match(error.message, /--- last \d+ lines of .*cassandra\.log ---/);
  assert.ok(
    error.logTail.some((l) => /Missing required directive CommitLogSync/.test(l)),
    `the log tail names the missing setting:\n${error.logTail.join("\n")}`,
  );
  assert.ok(pid !== undefined && !isAlive(pid), `JVM pid ${pid} is gone`);
  if (error.logFile) await rm(error.logFile.replace(/\/cassandra\.log$/, ""), { recursive: true });
});

test("asking for a CQL port that is in use fails before any JVM starts", {
  skip,
  timeout: TIMEOUT,
}, async () => {
  await ensureCassandraJars();
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  try {
    await assert.rejects(
      startCassandra({ port: address.port, log: () => undefined }),
      (e: unknown) =>
        e instanceof CassandraStartError &&
        e.message === `port ${address.port} on 127.0.0.1 is already in use`,
    );
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test("the JVM dies with its parent even when the parent is killed with SIGKILL", {
  skip,
  timeout: TIMEOUT,
}, async () => {
  const harness = fileURLToPath(new URL("./cassandra-node.ts", import.meta.url));
  const script = `
      const { startCassandra } = await import(${JSON.stringify(harness)});
      const node = await startCassandra({ log: () => {} });
      console.log("PID " + node.pid + " " + node.dataDir);
      setInterval(() => {}, 1000);
    `;
  const parent = spawn(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "--eval", script],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    parent.stdout.setEncoding("utf8");
    parent.stdout.on("data", (chunk: string) => {
      out += chunk;
      const m = /PID \d+ \S+/.exec(out);
      if (m) resolve(m[0]);
    });
    parent.once("exit", (code) =>
      reject(new Error(`parent exited (${code}) before the node was up`)),
    );
  });
  const [, pidText, dataDir] = line.split(" ");
  const pid = Number(pidText);
  assert.equal(isAlive(pid), true);
  parent.kill("SIGKILL");
  assert.equal(
    await waitUntilGone(pid, 20_000),
    true,
    `JVM pid ${pid} outlived its SIGKILLed parent`,
  );
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});
