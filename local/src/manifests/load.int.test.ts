import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { expandManifestPaths, loadPoolManifests } from "./index.js";

const dir = mkdtempSync(join(tmpdir(), "berth-manifests-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const pool = (name: string, capacity: number) =>
  `apiVersion: berth.dev/v1alpha1\nkind: CapacityPool\nmetadata: {name: ${name}}\nspec: {capacity: ${capacity}}\n`;

test("the example manifests load as twelve valid pools", async () => {
  const examples = fileURLToPath(new URL("../../../examples/pools.yaml", import.meta.url));
  const pools = await loadPoolManifests([examples]);
  assert.equal(pools.length, 12);
  assert.ok(pools.some((p) => p.spec.closed));
  assert.ok(pools.some((p) => p.spec.capacity >= 100_000 && p.spec.window === undefined));
  assert.deepEqual(
    [...new Set(pools.filter((p) => p.spec.labels.zone).map((p) => p.spec.labels.zone))].sort(),
    ["north", "south"],
  );
});

test("a directory stands for its YAML files in name order", async () => {
  const d = join(dir, "pools");
  mkdirSync(d);
  writeFileSync(join(d, "b.yaml"), pool("b", 2));
  writeFileSync(join(d, "a.yml"), pool("a", 1));
  writeFileSync(join(d, "notes.txt"), "not a manifest");
  assert.deepEqual(await expandManifestPaths([d]), [join(d, "a.yml"), join(d, "b.yaml")]);
  const pools = await loadPoolManifests([d]);
  assert.deepEqual(
    pools.map((p) => p.spec.pool),
    ["default/a", "default/b"],
  );
});

test("problems of every file are reported together, and missing paths are named", async () => {
  const one = join(dir, "one.yaml");
  const two = join(dir, "two.yaml");
  writeFileSync(one, pool("x", -1));
  writeFileSync(two, pool("y", 1.5));
  await assert.rejects(loadPoolManifests([one, two]), {
    name: "ManifestError",
    message: [
      `${one}: document 1: spec.capacity: must be an integer between 0 and 2147483647, got -1 (line 4)`,
      `${two}: document 1: spec.capacity: must be an integer between 0 and 2147483647, got 1.5 (line 4)`,
    ].join("\n"),
  });
  const missing = join(dir, "missing.yaml");
  await assert.rejects(loadPoolManifests([missing]), {
    name: "ManifestError",
    message: new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: cannot read: ENOENT`),
  });
  const empty = join(dir, "empty");
  mkdirSync(empty);
  await assert.rejects(loadPoolManifests([empty]), {
    name: "ManifestError",
    message: `${empty}: directory holds no *.yaml or *.yml file`,
  });
});

test("the same pool in two files is rejected", async () => {
  const one = join(dir, "dup-1.yaml");
  const two = join(dir, "dup-2.yaml");
  writeFileSync(one, pool("same", 1));
  writeFileSync(two, pool("same", 2));
  await assert.rejects(loadPoolManifests([one, two]), {
    name: "ManifestError",
    message: `${two}: document 1: metadata.name: pool default/same is already defined in ${one}: document 1 (line 1)`,
  });
});
