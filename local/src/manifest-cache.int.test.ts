// The manifest cache answers exactly what parsing would, and only for unchanged bytes.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, test } from "node:test";
import { REPO_ROOT } from "./local-cluster.js";
import { ManifestCache } from "./manifest-cache.js";
import { loadPoolManifests, ManifestError } from "./manifests/index.js";

const root = mkdtempSync(join(tmpdir(), "berth-manifest-cache-"));
after(() => rmSync(root, { recursive: true, force: true }));

function setup(name: string): { file: string; cacheFile: string } {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "pools.yaml");
  copyFileSync(resolve(REPO_ROOT, "examples/pools.yaml"), file);
  return { file, cacheFile: join(dir, "cache.json") };
}

test("a cache read back from its file answers exactly what parsing the manifests answers", async () => {
  const { file, cacheFile } = setup("roundtrip");
  const parsed = await loadPoolManifests([file]);
  const first = await ManifestCache.open(cacheFile);
  assert.deepEqual(await first.load([file]), parsed);
  await first.save();
  const second = await ManifestCache.open(cacheFile);
  assert.deepEqual(await second.load([file]), parsed);
});

test("a changed file is parsed again, and an invalid change fails as it would uncached", async () => {
  const { file, cacheFile } = setup("changed");
  const cache = await ManifestCache.open(cacheFile);
  await cache.load([file]);
  await cache.save();
  const text = readFileSync(file, "utf8");
  writeFileSync(file, text.replace("capacity: 40", "capacity: 41"));
  const reopened = await ManifestCache.open(cacheFile);
  const changed = await reopened.load([file]);
  assert.deepEqual(changed, await loadPoolManifests([file]));
  assert.equal(changed[0]?.spec.capacity, 41);
  writeFileSync(file, text.replace("capacity: 40", "capacity: -1"));
  const problems = async (load: () => Promise<unknown>) => {
    try {
      await load();
    } catch (e: unknown) {
      assert.ok(e instanceof ManifestError);
      return e.message;
    }
    assert.fail("expected a ManifestError");
  };
  assert.equal(
    await problems(() => reopened.load([file])),
    await problems(() => loadPoolManifests([file])),
  );
});

test("a cache file that is not this build's (or not JSON) is ignored", async () => {
  const { file, cacheFile } = setup("foreign");
  const cache = await ManifestCache.open(cacheFile);
  await cache.load([file]);
  await cache.save();
  const body = JSON.parse(readFileSync(cacheFile, "utf8")) as {
    fingerprint: string;
    files: Record<string, { manifests: { spec: { capacity: number } }[] }>;
  };
  // A foreign build's cache that claims another capacity is not believed.
  for (const f of Object.values(body.files)) for (const m of f.manifests) m.spec.capacity = 7;
  writeFileSync(cacheFile, JSON.stringify({ ...body, fingerprint: "another build" }));
  const foreign = await ManifestCache.open(cacheFile);
  assert.deepEqual(await foreign.load([file]), await loadPoolManifests([file]));
  writeFileSync(cacheFile, "{ not json");
  const broken = await ManifestCache.open(cacheFile);
  assert.deepEqual(await broken.load([file]), await loadPoolManifests([file]));
});
