import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CRD_DIR, renderCrdFiles } from "../crd-yaml.js";
import { allCrds, LOCAL_RULES, type Schema } from "./index.js";

const root = new URL("../../../../", import.meta.url).pathname;

test("the CRD YAML in charts/berth/crds is what the API types generate (else: npm run crds:gen)", () => {
  const dir = join(root, CRD_DIR);
  const files = renderCrdFiles();
  assert.deepEqual(readdirSync(dir).sort(), files.map((f) => f.file).sort());
  for (const { file, text } of files) {
    assert.equal(
      readFileSync(join(dir, file), "utf8"),
      text,
      `${CRD_DIR}/${file} is stale: run npm run crds:gen`,
    );
  }
});

function* nodes(schema: Schema, path: string): Generator<[string, Schema]> {
  yield [path, schema];
  for (const [k, v] of Object.entries(schema.properties ?? {})) yield* nodes(v, `${path}.${k}`);
  if (schema.items !== undefined) yield* nodes(schema.items, `${path}[]`);
  if (schema.additionalProperties !== undefined) {
    yield* nodes(schema.additionalProperties, `${path}{}`);
  }
}

function versionSchema(crd: Record<string, unknown>): Schema {
  const spec = crd.spec as { versions: { schema: { openAPIV3Schema: Schema } }[] };
  const v = spec.versions[0];
  assert.ok(v !== undefined);
  return v.schema.openAPIV3Schema;
}

test("every CRD schema is structural: each node typed, maps never beside properties", () => {
  for (const { file, crd } of allCrds()) {
    for (const [path, node] of nodes(versionSchema(crd), file)) {
      assert.ok(node.type !== undefined, `${path} has no type`);
      assert.ok(
        !(node.properties !== undefined && node.additionalProperties !== undefined),
        `${path} has both properties and additionalProperties`,
      );
      for (const key of Object.keys(node)) {
        assert.ok(!key.startsWith("x-berth"), `${path} carries the local-only keyword ${key}`);
      }
    }
  }
});

test("every CEL rule in a CRD has a local implementation, so local mode judges it too", () => {
  const used = new Set<string>();
  for (const { crd } of allCrds()) {
    for (const [, node] of nodes(versionSchema(crd), "")) {
      for (const r of node["x-kubernetes-validations"] ?? []) used.add(r.rule);
    }
  }
  assert.ok(used.size > 0);
  for (const rule of used) assert.ok(LOCAL_RULES[rule] !== undefined, `no local rule for ${rule}`);
  assert.deepEqual([...used].sort(), Object.keys(LOCAL_RULES).sort(), "unused local rules");
});

test("the shard count transition rule holds on create and on an unchanged value only", () => {
  const rule = LOCAL_RULES["self.shardCount == oldSelf.shardCount"];
  assert.ok(rule !== undefined);
  assert.equal(rule({ shardCount: 256 }, undefined), true);
  assert.equal(rule({ shardCount: 256 }, { shardCount: 256 }), true);
  assert.equal(rule({ shardCount: 512 }, { shardCount: 256 }), false);
});
