// The operator's worker clients over internal mutual TLS, against a real worker in this
// process (SQLite journal): the WatchShards stream (WorkerReports) and the gossip pulls
// (PoolCounters) reach a TLS worker with the CA's certificate, and not without one.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type InternalTransport, loadInternalTls } from "@berth/common";
import { createCertificateAuthority, writeInternalTlsDir } from "@berth/common/testing";
import { Router } from "@berth/gateway";
import { PoolCounters, WorkerReports } from "@berth/operator";
import { internal, planShardMap, StaticShardMapSource } from "@berth/proto";
import { openJournal, type RunningWorker, startWorker } from "@berth/worker";
import { pino } from "pino";

const silent = pino({ level: "silent" });
const dir = mkdtempSync(join(tmpdir(), "berth-operator-tls-"));
const SERVER_NAME = "berth-worker.berth.svc";
const maps = new StaticShardMapSource();
const pool = "default/operator-tls";
let journal: Awaited<ReturnType<typeof openJournal>>;
let worker: RunningWorker;
let workerTls: InternalTransport;
let operatorTls: InternalTransport;

before(async () => {
  const ca = await createCertificateAuthority(join(dir, "pki"));
  const names = { sans: [`DNS:${SERVER_NAME}`] };
  workerTls = loadInternalTls({ dir: await writeInternalTlsDir(ca, join(dir, "worker"), names) });
  operatorTls = loadInternalTls({
    dir: await writeInternalTlsDir(ca, join(dir, "operator"), names),
    serverName: SERVER_NAME,
  });
  journal = await openJournal(`sqlite://${join(dir, "journal.db")}`);
  worker = await startWorker({
    id: "worker-0",
    grpc: "127.0.0.1:0",
    journal,
    shardMapSource: maps,
    transport: workerTls,
    logger: silent,
  });
  maps.set(
    planShardMap({
      members: [{ id: "worker-0", address: worker.address }],
      shardCount: 4,
      quorum: 1,
    }),
  );
  await worker.whenReady();
});

after(async () => {
  await worker?.close();
  await journal?.close();
  workerTls?.close();
  operatorTls?.close();
  maps.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Polls `done` until it holds (the test's own timeout bounds it). */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await sleep(50);
}

describe("the operator's worker clients over internal TLS", () => {
  test("WorkerReports opens its WatchShards stream to a TLS worker and gets its report", async () => {
    const reports = new WorkerReports({ clusterId: "", logger: silent, transport: operatorTls });
    try {
      reports.track([{ id: "worker-0", address: worker.address }]);
      await until(() => reports.latest("worker-0") !== undefined);
      assert.equal(reports.connected, 1);
    } finally {
      reports.close();
    }
  });

  test("PoolCounters pulls a TLS worker's counters", async () => {
    // Configured the way the gateway and operator route commands: by the ShardMap, over TLS.
    const router = new Router({ source: maps, transport: operatorTls, logger: silent });
    try {
      await router.call(
        "configure",
        pool,
        internal.PoolSpec.fromPartial({ pool, capacity: 5, generation: 1 }),
        Date.now() + 10_000,
      );
    } finally {
      router.close();
    }
    const counters = new PoolCounters({
      clusterId: "",
      logger: silent,
      intervalMs: 50,
      onChanged: () => {},
      transport: operatorTls,
    });
    try {
      counters.setMembers([{ id: "worker-0", address: worker.address }]);
      counters.start();
      await until(() => counters.get(pool) !== undefined);
      assert.equal(counters.get(pool)?.capacity, 5);
    } finally {
      counters.stop();
    }
  });

  test("without TLS the operator's gossip pulls fail: the worker refuses plaintext", async () => {
    const plain = new PoolCounters({
      clusterId: "",
      logger: silent,
      intervalMs: 50,
      onChanged: () => {},
    });
    try {
      plain.setMembers([{ id: "worker-0", address: worker.address }]);
      plain.start();
      await until(() => plain.stats().failures >= 2);
      assert.equal(plain.stats().pools, 0);
    } finally {
      plain.stop();
    }
  });
});
