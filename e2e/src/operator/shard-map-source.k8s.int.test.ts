// ShardMapResourceSource on a real kube-apiserver: the map the operator writes into a
// ShardMap's /status (as shardMapStatusOf builds it) is what workers and gateways get
// back; only higher revisions are published; unusable versions, lower revisions and
// other ShardMap objects are ignored.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  API_VERSION,
  SHARD_MAP_KIND,
  SHARD_MAP_PLURAL,
  ShardMapResourceSource,
  type ShardMapStatus,
  shardMapStatusOf,
} from "@berth/kubernetes";
import { type internal, planShardMap } from "@berth/proto";
import { type ControlPlane, goMissingReason, startControlPlane } from "@berth/testing/kubernetes";
import { pino } from "pino";

const skip = goMissingReason();
if (skip) console.log(`# SKIP ShardMap source tests: ${skip}`);

const root = new URL("../../../", import.meta.url).pathname;
const logger = pino({ level: process.env.BERTH_TEST_LOG_LEVEL ?? "silent" });
const NS = "berth-system";
const SHARDS = 4;

async function until(what: string, ok: () => boolean, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const member = (id: string) => ({ id, address: `${id}.berth-workers.${NS}.svc:7000` });

/** Plans `count` maps in a row, members leaving one by one: revisions 1..count. */
function planned(count: number): internal.ShardMap[] {
  const ids = ["worker-0", "worker-1", "worker-2", "worker-3"];
  const maps: internal.ShardMap[] = [];
  for (let i = 0; i < count; i++) {
    maps.push(
      planShardMap({
        members: ids.slice(0, ids.length - (i % ids.length)).map(member),
        shardCount: SHARDS,
        quorum: 1,
        ...(maps.length > 0 ? { previous: maps.at(-1) as internal.ShardMap } : {}),
      }),
    );
  }
  return maps;
}

describe("ShardMapResourceSource on a real kube-apiserver", { skip }, () => {
  let cp: ControlPlane;
  let scratch: string;

  const kubectl = async (...args: string[]) => {
    const r = await cp.kubectl(args);
    assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  const applyShardMap = async (name: string) => {
    const file = join(scratch, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: API_VERSION,
        kind: SHARD_MAP_KIND,
        metadata: { name, namespace: NS },
        spec: { shardCount: SHARDS, quorum: 1 },
      }),
    );
    await kubectl("apply", "-f", file);
  };
  /** What the operator's leader does: write the status through the /status subresource. */
  const writeStatus = (name: string, status: ShardMapStatus) =>
    kubectl(
      "patch",
      `${SHARD_MAP_PLURAL}/${name}`,
      "-n",
      NS,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status }),
    );
  const statusOf = (map: internal.ShardMap) =>
    shardMapStatusOf(map, { live: new Set(map.members.map((m) => m.id)) });

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), "berth-shardmap-"));
    cp = await startControlPlane();
    await kubectl("apply", "-f", join(root, "charts/berth/crds"));
    await kubectl(
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/shardmaps.berth.dev",
    );
    await kubectl("create", "namespace", NS);
  });
  after(async () => {
    await cp?.stop();
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  });

  test("publishes each higher revision written to the status; lower revisions, unusable versions and other ShardMaps are ignored", async () => {
    const source = new ShardMapResourceSource({
      kubeConfig: cp.kubeConfig(),
      namespace: NS,
      name: "berth",
      logger,
      restartDelayMs: { initial: 100, max: 1_000 },
    });
    const published: internal.ShardMap[] = [];
    source.subscribe((map) => published.push(map));
    source.start();
    try {
      await source.synced(AbortSignal.timeout(90_000));
      assert.equal(source.current(), undefined, "no ShardMap yet");

      const maps = planned(6);
      const [m1, m2, m3, m4, m5, m6] = maps as [
        internal.ShardMap,
        internal.ShardMap,
        internal.ShardMap,
        internal.ShardMap,
        internal.ShardMap,
        internal.ShardMap,
      ];
      // Another ShardMap in the namespace, far ahead: not the one this source follows.
      await applyShardMap("other");
      await writeStatus("other", statusOf({ ...m6, revision: 50 }));

      await applyShardMap("berth");
      await until("the status-less object to be ignored", () => source.stats().ignored === 1);
      assert.equal(source.stats().lastIgnored, "unusable: no status yet");
      assert.equal(source.current(), undefined);

      await writeStatus("berth", statusOf(m1));
      await until("revision 1", () => source.current()?.revision === 1);
      assert.deepEqual(source.current(), m1);

      await writeStatus("berth", statusOf(m3));
      await until("revision 3", () => source.current()?.revision === 3);
      // A lower revision (an operator with a stale view) must not roll workers back.
      await writeStatus("berth", statusOf(m2));
      await writeStatus("berth", statusOf(m4));
      await until("revision 4", () => source.current()?.revision === 4);
      assert.equal(source.stats().lastIgnored, "revision 2 is below the current 3");

      // Valid for the CRD schema, not for the proto contract: an owner that is no member.
      const orphan = statusOf(m5);
      await writeStatus("berth", {
        ...orphan,
        shards: (orphan.shards ?? []).map((s, i) => (i === 0 ? { ...s, owner: "ghost" } : s)),
      });
      await writeStatus("berth", statusOf(m6));
      await until("revision 6", () => source.current()?.revision === 6);
      assert.equal(
        source.stats().lastIgnored,
        'unusable: shard 0 is owned by "ghost", who is not a member',
      );

      assert.deepEqual(
        published.map((m) => m.revision),
        [1, 3, 4, 6],
      );
      assert.deepEqual(published.at(-1), m6);
      assert.deepEqual(source.stats(), {
        published: 4,
        ignored: 3,
        lastIgnored: 'unusable: shard 0 is owned by "ghost", who is not a member',
      });
    } finally {
      source.close();
    }
  });

  test("a source started after the map was published has it as soon as it is synced", async () => {
    const late = new ShardMapResourceSource({
      kubeConfig: cp.kubeConfig(),
      namespace: NS,
      name: "berth",
      logger,
    });
    late.start();
    try {
      await late.synced(AbortSignal.timeout(90_000));
      assert.equal(late.current()?.revision, 6);
      assert.equal(late.current()?.shardCount, SHARDS);
    } finally {
      late.close();
    }
  });
});
