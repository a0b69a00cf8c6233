// The generated CRDs on a real kube-apiserver: they install, and the shared table of
// good and bad CapacityPool manifests gets the same verdict (on the same field) from
// `kubectl apply` as from local mode's validation. Also: printer columns, the status
// subresource, and the ShardMap's fixed shard count.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  API_VERSION,
  CAPACITY_POOL_CASES,
  CAPACITY_POOL_KIND,
  SHARD_MAP_KIND,
  validateCapacityPool,
} from "@berth/kubernetes";
import { type ControlPlane, goMissingReason, startControlPlane } from "@berth/testing/kubernetes";

const skip = goMissingReason();
if (skip) console.log(`# SKIP CRD tests on a real API server: ${skip}`);

const root = new URL("../../../", import.meta.url).pathname;
const NS = "crd-cases";

describe("the berth.dev CRDs on a real kube-apiserver", { skip }, () => {
  let cp: ControlPlane;
  let scratch: string;

  const kubectl = async (...args: string[]) => cp.kubectl(args);
  const applyJson = async (object: unknown, ...extra: string[]) => {
    const file = join(scratch, `o-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(object));
    return kubectl("apply", "-n", NS, "-f", file, ...extra);
  };

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), "berth-crds-"));
    cp = await startControlPlane();
    const applied = await kubectl("apply", "-f", join(root, "charts/berth/crds"));
    assert.equal(applied.code, 0, applied.stderr);
    const established = await kubectl(
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/capacitypools.berth.dev",
      "crd/shardmaps.berth.dev",
    );
    assert.equal(established.code, 0, established.stderr);
    assert.equal((await kubectl("create", "namespace", NS)).code, 0);
  });

  after(async () => {
    await cp?.stop();
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  });

  for (const c of CAPACITY_POOL_CASES) {
    test(`kubectl apply and local mode agree: ${c.title}`, async () => {
      const object = { apiVersion: API_VERSION, kind: CAPACITY_POOL_KIND, ...c.object };
      const local = validateCapacityPool(object);
      const server = await applyJson(object, "--dry-run=server");
      const serverText = `${server.stdout}${server.stderr}`.trim();
      console.log(
        `# ${c.title}\n#   local:  ${local.map((p) => `${p.field}: ${p.message}`).join("; ") || "valid"}\n#   server: ${serverText}`,
      );
      if (c.rejects === undefined) {
        assert.deepEqual(local, []);
        assert.equal(server.code, 0, serverText);
        return;
      }
      assert.notEqual(server.code, 0, `the API server accepted it: ${serverText}`);
      assert.ok(serverText.includes(c.rejects), `the API server should name ${c.rejects}`);
      assert.ok(local.length > 0, "local mode accepted it");
      assert.ok(local.every((p) => p.field.startsWith(c.rejects ?? "")));
    });
  }

  test("kubectl get cp shows Capacity, Reserved, Available, Owner, Ready and Age; status is a subresource", async () => {
    const pool = {
      apiVersion: API_VERSION,
      kind: CAPACITY_POOL_KIND,
      metadata: { name: "north-morning", labels: { zone: "north" } },
      spec: { capacity: 40 },
    };
    const created = await applyJson(pool);
    assert.equal(created.code, 0, created.stderr);
    // A status sent with the object is dropped: only /status writes it.
    const withStatus = await applyJson({ ...pool, status: { reserved: 3 } });
    assert.equal(withStatus.code, 0, withStatus.stderr);
    const patched = await kubectl(
      "patch",
      "-n",
      NS,
      "cp",
      "north-morning",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({
        status: {
          reserved: 5,
          available: 35,
          owner: "worker-1",
          conditions: [
            {
              type: "Ready",
              status: "True",
              reason: "Configured",
              message: "serving",
              lastTransitionTime: "2026-12-01T00:00:00Z",
            },
          ],
        },
      }),
    );
    assert.equal(patched.code, 0, patched.stderr);
    const table = await kubectl("get", "-n", NS, "cp", "north-morning");
    assert.equal(table.code, 0, table.stderr);
    const [header, row] = table.stdout.trim().split("\n");
    assert.deepEqual(header?.split(/\s+/), [
      "NAME",
      "CAPACITY",
      "RESERVED",
      "AVAILABLE",
      "OWNER",
      "READY",
      "AGE",
    ]);
    assert.deepEqual(row?.split(/\s+/).slice(0, 6), [
      "north-morning",
      "40",
      "5",
      "35",
      "worker-1",
      "True",
    ]);
    const byCategory = await kubectl("get", "berth", "-n", NS, "-o", "name");
    assert.match(byCategory.stdout, /capacitypool\.berth\.dev\/north-morning/);
  });

  test("a ShardMap's shard count is fixed once created", async () => {
    const map = {
      apiVersion: API_VERSION,
      kind: SHARD_MAP_KIND,
      metadata: { name: "berth" },
      spec: { shardCount: 256 },
    };
    assert.equal((await applyJson(map)).code, 0);
    const changed = await applyJson({ ...map, spec: { shardCount: 512 } });
    assert.notEqual(changed.code, 0);
    assert.match(changed.stderr, /shardCount is fixed at install and cannot change/);
    const cols = await kubectl("get", "-n", NS, "shardmap", "berth");
    assert.match(
      cols.stdout,
      /^NAME\s+SHARDS\s+MEMBERS\s+LIVE\s+QUORUM\s+MOVING\s+QUORUMLOST\s+AGE/,
    );
  });
});
