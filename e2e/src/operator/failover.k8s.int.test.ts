// Failures Berth on Kubernetes must ride out, under load, on a real kube-apiserver with
// every process on the host: a worker asked to stop (SIGTERM: drain, hand off, zero
// failed requests), a worker killed (its shards move once its Lease expired), two of
// three workers killed (quorum lost: nothing moves), the operator leader killed (the
// standby takes over, no shard moves), kube-apiserver restarted (clients see nothing).
// Every acknowledged reserve is counted and checked against the pools at the end.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseRichStatus } from "@berth/common";
import {
  type BerthOnHost,
  type ControlPlane,
  goMissingReason,
  installCrds,
  startBerthOnHost,
  startControlPlane,
  until,
} from "@berth/testing/kubernetes";
import { CapacityApi } from "../acceptance/clients.js";

const skip = goMissingReason();
if (skip) console.log(`# SKIP failover tests: ${skip}`);

const NS = "berth";
const POOL_NS = "load";
const POOLS = 24;
const SHARDS = 16;
const CAPACITY = 1_000_000;

/** Reserves one unit at a time on every pool in turn, retrying each request id until it succeeds. */
class Load {
  acknowledged = 0;
  failed = 0;
  falseReplays = 0;
  readonly errors: string[] = [];
  #running = true;
  #loops: Promise<void>[] = [];
  #seq = 0;

  constructor(
    private readonly api: CapacityApi,
    private readonly pools: readonly string[],
    private readonly tag: string,
    clients = 4,
  ) {
    this.#loops = Array.from({ length: clients }, (_, i) => this.#loop(i));
  }

  async #loop(client: number): Promise<void> {
    let turn = client;
    while (this.#running) {
      const pool = this.pools[turn++ % this.pools.length] as string;
      const requestId = `${this.tag}-${client}-${this.#seq++}`;
      // One client request, retried with the same id (what a well-behaved client does
      // after UNAVAILABLE): the gateway's own retries happen inside each call.
      const deadline = Date.now() + 30_000;
      for (let attempt = 0; ; attempt++) {
        try {
          const r = await this.api.reserve({ pool, units: 1, requestId }, 10_000);
          if (attempt === 0 && r.replayed) this.falseReplays++;
          this.acknowledged++;
          break;
        } catch (e: unknown) {
          const s = parseRichStatus(e);
          this.errors.push(`${pool} ${requestId}: ${s.reason ?? s.code} ${s.message}`);
          if (Date.now() > deadline) {
            this.failed++;
            break;
          }
        }
      }
    }
  }

  /** Client requests that needed a retry of their own (the gateway could not hide a failure). */
  get clientRetries(): number {
    return this.errors.length;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
  }
}

describe("Berth on Kubernetes rides out failures under load", { skip }, () => {
  let cp: ControlPlane;
  let dir: string;
  let api: CapacityApi;
  let berth: BerthOnHost;
  const pools = Array.from({ length: POOLS }, (_, i) => `${POOL_NS}/p${i}`);
  let acknowledged = 0;

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cp.kubectl(args);
    assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  /** True once the operator has recorded an Event `reason` of `type` on the ShardMap. */
  const shardMapEventSeen = async (reason: string, type: "Normal" | "Warning") => {
    const events = JSON.parse(await kubectl("get", "events", "-n", NS, "-o", "json")).items as {
      reason?: string;
      type?: string;
      involvedObject?: { kind?: string };
    }[];
    return events.some(
      (e) => e.reason === reason && e.type === type && e.involvedObject?.kind === "ShardMap",
    );
  };
  const leaderIndex = async (): Promise<number | undefined> => {
    for (const [i, op] of berth.operators.entries()) {
      const text = await op.metrics().catch(() => "");
      if (/^berth_operator_leader(\{[^}]*\})? 1$/m.test(text)) return i;
    }
    return undefined;
  };
  const settled = async () => {
    const m = await berth.shardMap();
    return (
      m.status?.conditions?.some((c) => c.type === "Progressing" && c.status === "False") ===
        true && m.status?.liveMembers === 3
    );
  };
  /** Runs `during` with load beside it; returns the load's tally. */
  const underLoad = async (tag: string, during: () => Promise<void>): Promise<Load> => {
    const load = new Load(api, pools, tag);
    try {
      await new Promise((r) => setTimeout(r, 500));
      await during();
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await load.stop();
    }
    acknowledged += load.acknowledged;
    assert.equal(load.falseReplays, 0, "no first call answered replayed");
    assert.ok(load.acknowledged > 0, "the load made progress");
    return load;
  };

  before(async () => {
    cp = await startControlPlane();
    dir = mkdtempSync(join(tmpdir(), "berth-failover-e2e-"));
    await installCrds(cp);
    for (const ns of [NS, POOL_NS]) await kubectl("create", "namespace", ns);
    const admin = cp.adminKubeconfig;
    berth = await startBerthOnHost({
      kubectl: (args) => cp.kubectl(args),
      kubeconfigs: { operator: () => admin, worker: () => admin, gateway: admin },
      dir,
      namespace: NS,
      clusterId: "e2e-failover",
      shards: SHARDS,
      leaseDurationMs: 2_000,
      leaseRenewMs: 500,
    });
    api = new CapacityApi(berth.gatewayAddress);
    const manifests = pools.map((id) => ({
      apiVersion: "berth.dev/v1alpha1",
      kind: "CapacityPool",
      metadata: { name: id.split("/")[1], namespace: POOL_NS, labels: { load: "yes" } },
      spec: { capacity: CAPACITY },
    }));
    await kubectl(
      "apply",
      "-f",
      writeManifest(dir, { apiVersion: "v1", kind: "List", items: manifests }),
    );
    await until(
      "every load pool Ready",
      async () => {
        const items = JSON.parse(await kubectl("get", "capacitypools", "-n", POOL_NS, "-o", "json"))
          .items as { status?: { conditions?: { type: string; status: string }[] } }[];
        return (
          items.length === POOLS &&
          items.every((p) =>
            p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
          )
        );
      },
      60_000,
      () => berth.explain(),
    );
  });

  after(async () => {
    api?.close();
    await berth?.stop();
    await cp?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test("SIGTERM of a worker: its shards are drained and handed off; no client request fails", async () => {
    const worker = berth.workers[1];
    assert.ok(worker !== undefined);
    const load = await underLoad("sigterm", async () => {
      const code = await worker.stop("SIGTERM", 40_000);
      assert.equal(code, 0, `worker-1 exits cleanly after its hand-off\n${worker.tail()}`);
      const owners = await berth.owners();
      assert.ok(![...owners.values()].includes("worker-1"), "worker-1 owns nothing once gone");
    });
    assert.equal(load.failed, 0, `failed client requests: ${load.errors.slice(0, 5).join("; ")}`);
    assert.equal(
      load.clientRetries,
      0,
      `requests the gateway could not hide: ${load.errors.slice(0, 5).join("; ")}`,
    );
    const lease = await cp.kubectl(["get", "lease", "worker-1", "-n", NS]);
    assert.notEqual(lease.code, 0, "a worker that left deleted its Lease");
    worker.start();
    await until("worker-1 back and the map settled", settled, 60_000, () => berth.explain());
  });

  test("kill -9 of a worker: its shards move once its Lease expired; its pools serve again", async () => {
    const worker = berth.workers[2];
    assert.ok(worker !== undefined);
    const before = await berth.owners();
    const load = await underLoad("sigkill", async () => {
      await worker.stop("SIGKILL");
      await until(
        "worker-2's shards taken over by live workers",
        async () => {
          const owners = await berth.owners();
          return ![...owners.values()].includes("worker-2");
        },
        30_000,
        () => berth.explain(),
      );
    });
    assert.equal(
      load.failed,
      0,
      `client requests that never succeeded: ${load.errors.slice(0, 5).join("; ")}`,
    );
    const after = await berth.owners();
    for (const [shard, owner] of before) {
      if (owner !== "worker-2")
        assert.equal(after.get(shard), owner, `shard ${shard} of a live worker stayed`);
    }
    worker.start();
    await until("worker-2 back and the map settled", settled, 60_000, () => berth.explain());
  });

  test("two of three workers killed: quorum lost, nothing moves; one returns and moves resume", async () => {
    const [w0, w1] = berth.workers;
    assert.ok(w0 !== undefined && w1 !== undefined);
    const before = await berth.owners();
    await w0.stop("SIGKILL");
    await w1.stop("SIGKILL");
    await until(
      "QuorumLost on the ShardMap",
      async () =>
        (await berth.shardMap()).status?.conditions?.some(
          (c) => c.type === "QuorumLost" && c.status === "True",
        ) === true,
      30_000,
      () => berth.explain(),
    );
    const leader = berth.operators[(await leaderIndex()) ?? 0];
    assert.match((await leader?.metrics()) ?? "", /^berth_operator_quorum_lost(\{[^}]*\})? 1$/m);
    await until("a QuorumLost Warning event on the ShardMap", () =>
      shardMapEventSeen("QuorumLost", "Warning"),
    );
    // Well past the Lease duration: still nothing was taken from the dead workers.
    await new Promise((r) => setTimeout(r, 3_000));
    assert.deepEqual(await berth.owners(), before, "below quorum the map is frozen");
    w0.start();
    await until(
      "quorum back and worker-1's shards moved to live workers",
      async () => {
        const m = await berth.shardMap();
        const lost = m.status?.conditions?.some(
          (c) => c.type === "QuorumLost" && c.status === "True",
        );
        const owners = [...(await berth.owners()).values()];
        return lost === false && !owners.includes("worker-1");
      },
      60_000,
      () => berth.explain(),
    );
    await until("a QuorumRegained Normal event on the ShardMap", () =>
      shardMapEventSeen("QuorumRegained", "Normal"),
    );
    await until("a ShardsMoved Normal event on the ShardMap", () =>
      shardMapEventSeen("ShardsMoved", "Normal"),
    );
    w1.start();
    await until("all three back and settled", settled, 60_000, () => berth.explain());
  });

  test("the operator leader killed: the standby takes over, no shard moves, clients unaffected", async () => {
    const i = await leaderIndex();
    assert.ok(i !== undefined, "one operator leads");
    const leader = berth.operators[i];
    const standby = berth.operators[1 - i];
    assert.ok(leader !== undefined && standby !== undefined);
    const before = JSON.stringify((await berth.shardMap()).status?.shards);
    const load = await underLoad("leader", async () => {
      await leader.stop("SIGKILL");
      await until(
        "the standby to lead",
        async () => /^berth_operator_leader(\{[^}]*\})? 1$/m.test(await standby.metrics()),
        30_000,
      );
      await new Promise((r) => setTimeout(r, 1_000));
    });
    assert.equal(load.failed, 0);
    assert.equal(
      load.clientRetries,
      0,
      `requests that failed: ${load.errors.slice(0, 5).join("; ")}`,
    );
    assert.equal(JSON.stringify((await berth.shardMap()).status?.shards), before, "no shard moved");
    leader.start();
  });

  test("kube-apiserver restarted mid-run: clients see no failure; everything reconnects", async () => {
    const owners = await berth.owners();
    const load = await underLoad("apiserver", async () => {
      await cp.restartApiServer();
      await new Promise((r) => setTimeout(r, 1_000));
    });
    assert.equal(load.failed, 0);
    assert.equal(
      load.clientRetries,
      0,
      `requests that failed: ${load.errors.slice(0, 5).join("; ")}`,
    );
    // Longer than a worker Lease, the outage expired every member in the operator's
    // eyes at once (quorum lost: frozen), and they came back together: nothing moved.
    assert.deepEqual(await berth.owners(), owners, "no shard moved across the outage");
    // The informers reconnected: a pool created now becomes Ready and is served.
    await kubectl(
      "apply",
      "-f",
      writeManifest(dir, {
        apiVersion: "berth.dev/v1alpha1",
        kind: "CapacityPool",
        metadata: { name: "after-restart", namespace: POOL_NS },
        spec: { capacity: 3 },
      }),
    );
    await until(
      "the new pool served",
      async () =>
        (await api.getPool(`${POOL_NS}/after-restart`).catch(() => undefined))?.capacity === 3,
      60_000,
      () => berth.explain(),
    );
  });

  test("nothing acknowledged was lost and nothing was reserved twice", async () => {
    let reserved = 0;
    for (const id of pools) {
      const p = await api.getPool(id);
      assert.ok(p.reserved <= p.capacity, `${id} not oversold`);
      reserved += p.reserved;
    }
    assert.equal(reserved, acknowledged, "every acknowledged reserve is in its pool, once");
  });
});

let manifestSeq = 0;
/** Writes a manifest (JSON is YAML) for kubectl apply -f; returns its path. */
function writeManifest(dir: string, manifest: unknown): string {
  const file = join(dir, `manifest-${manifestSeq++}.json`);
  writeFileSync(file, JSON.stringify(manifest));
  return file;
}
