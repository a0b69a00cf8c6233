// Internal mutual TLS end to end, in this process over loopback: a gateway with
// --internal-tls-dir forwards to a worker with it, and the worker's gossip reaches the
// gateway's TLS gossip port; a gateway without TLS, or with a certificate from another
// CA, is refused by the worker. Certificates are made by openssl.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CapacityServiceClient,
  type InternalTransport,
  loadInternalTls,
  parseRichStatus,
} from "@berth/common";
import { createCertificateAuthority, writeInternalTlsDir } from "@berth/common/testing";
import { type RunningGateway, startGateway } from "@berth/gateway";
import { eventually, shardMapAllOwnedBy, unary } from "@berth/gateway/testing";
import { internal, StaticShardMapSource, v1 } from "@berth/proto";
import { openJournal, type RunningWorker, startWorker } from "@berth/worker";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";

const silent = pino({ level: "silent" });
const dir = mkdtempSync(join(tmpdir(), "berth-gateway-tls-"));
/** Every certificate names this, not the 127.0.0.1 the nodes are dialled by. */
const SERVER_NAME = "berth-internal.berth.svc";
const maps = new StaticShardMapSource();
const transports: InternalTransport[] = [];
let worker: RunningWorker;
let journal: { close(): Promise<void> };
let gateway: RunningGateway;
let client: CapacityServiceClient;
const pool = "default/tls-pool";

async function nodeTransport(
  name: string,
  ca: Awaited<ReturnType<typeof createCertificateAuthority>>,
): Promise<InternalTransport> {
  const tlsDir = await writeInternalTlsDir(ca, join(dir, name), {
    subject: `/CN=${name}`,
    sans: [`DNS:${SERVER_NAME}`],
  });
  const t = loadInternalTls({ dir: tlsDir, serverName: SERVER_NAME });
  transports.push(t);
  return t;
}

async function plainGateway(transport?: InternalTransport): Promise<RunningGateway> {
  return startGateway({
    grpc: "127.0.0.1:0",
    gossip: "127.0.0.1:0",
    http: "127.0.0.1:0",
    shardMapSource: maps,
    shardMapWaitMs: 0,
    ...(transport === undefined ? {} : { transport }),
    router: { defaultDeadlineMs: 1_500 },
    logger: silent,
  });
}

before(async () => {
  const ca = await createCertificateAuthority(join(dir, "pki"));
  gateway = await plainGateway(await nodeTransport("gateway", ca));
  journal = await openJournal(`sqlite://${join(dir, "journal.db")}`);
  worker = await startWorker({
    id: "worker-0",
    grpc: "127.0.0.1:0",
    journal: journal as Awaited<ReturnType<typeof openJournal>>,
    shardMapSource: maps,
    gossipPeers: [gateway.gossipAddress],
    gossip: { pushDelayMs: 5, antiEntropyIntervalMs: 200 },
    transport: await nodeTransport("worker", ca),
    logger: silent,
  });
  maps.set(
    shardMapAllOwnedBy({
      revision: 1,
      owner: "worker-0",
      epoch: 1,
      members: [{ id: worker.id, address: worker.address }],
    }),
  );
  await worker.whenReady();
  await gateway.router.call(
    "configure",
    pool,
    internal.PoolSpec.fromPartial({ pool, capacity: 10, generation: 1 }),
    Date.now() + 10_000,
  );
  // The public port stays plaintext.
  client = new CapacityServiceClient(gateway.grpcAddress, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await gateway?.close();
  await worker?.close();
  await journal?.close();
  for (const t of transports) t.close();
  maps.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("internal mutual TLS between gateway and worker", () => {
  test("a reserve and its release go through the gateway to the worker over mutual TLS", async () => {
    const r = await unary(
      client,
      client.reserve,
      v1.ReserveRequest.fromPartial({ pool, units: 2, requestId: "tls-1" }),
    );
    assert.equal(r.units, 2);
    const released = await unary(
      client,
      client.release,
      v1.ReleaseRequest.fromPartial({ reservationId: r.reservationId }),
    );
    assert.equal(released.alreadyReleased, false);
  });

  test("the worker's gossip reaches the gateway's TLS gossip port", async () => {
    await eventually(
      () => gateway.replica.get(pool)?.counters.capacity === 10,
      "gossip to reach the gateway over TLS",
    );
  });

  test("a gateway without internal TLS cannot reach the TLS worker: UNAVAILABLE", async () => {
    const plain = await plainGateway();
    try {
      await assert.rejects(
        plain.router.call(
          "reserve",
          pool,
          v1.ReserveRequest.fromPartial({ pool, units: 1, requestId: "plain-1" }),
          Date.now() + 1_500,
        ),
        (e: unknown) => {
          const err = e as grpc.ServiceError;
          assert.equal(err.code, grpc.status.UNAVAILABLE, err.message);
          assert.equal(parseRichStatus(err).reason, "OWNER_UNAVAILABLE", err.message);
          return true;
        },
      );
    } finally {
      await plain.close();
    }
  });

  test("a gateway whose certificate another CA signed is refused by the worker", async () => {
    const otherCa = await createCertificateAuthority(join(dir, "other-pki"), "ca", "another-ca");
    const other = await plainGateway(await nodeTransport("intruder", otherCa));
    try {
      await assert.rejects(
        other.router.call(
          "reserve",
          pool,
          v1.ReserveRequest.fromPartial({ pool, units: 1, requestId: "other-1" }),
          Date.now() + 1_500,
        ),
        (e: unknown) => {
          const err = e as grpc.ServiceError;
          assert.equal(err.code, grpc.status.UNAVAILABLE, err.message);
          return true;
        },
      );
    } finally {
      await other.close();
    }
  });
});
