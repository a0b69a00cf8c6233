import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

const root = new URL("../..", import.meta.url).pathname;

/** One module resolution the child saw: what was imported, by whom, and what it became. */
interface Resolution {
  readonly specifier: string;
  readonly parent: string;
  readonly url: string;
}

// Runs in a fresh Node (the pinned one, with tsx as the tests use it): records every
// module resolution of the main thread — import and require alike — while it imports
// @berth/proto, and prints them as JSON.
const CHILD = `
import { registerHooks } from "node:module";
const seen = [];
registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context);
    seen.push({ specifier, parent: context.parentURL ?? "", url: resolved.url });
    return resolved;
  },
});
await import("@berth/proto");
process.stdout.write(JSON.stringify(seen));
`;

function resolutionsOfImportingProto(): Resolution[] {
  const r = spawnSync(
    process.execPath,
    ["--no-warnings", "--import", "tsx", "--input-type=module", "--eval", CHILD],
    { cwd: root, encoding: "utf8" },
  );
  assert.equal(r.status, 0, `the child failed:\n${r.stdout}${r.stderr}${r.error ?? ""}`);
  return JSON.parse(r.stdout) as Resolution[];
}

test("importing @berth/proto loads no node:* module and no gRPC library", () => {
  const seen = resolutionsOfImportingProto();
  // The hook saw the import itself (else an empty list would pass vacuously).
  assert.ok(
    seen.some((s) => s.url.endsWith("/proto/src/index.ts")),
    "the resolve hook saw @berth/proto's entry",
  );
  assert.ok(
    seen.some((s) => s.url.endsWith("/proto/src/gen/berth/internal/v1/worker.ts")),
    "the resolve hook saw the generated code",
  );
  const grpc = /\/node_modules\/@grpc\//;
  const impure = seen
    // Only the edges into impure code, not everything grpc-js loads after them.
    .filter((s) => (s.url.startsWith("node:") || grpc.test(s.url)) && !grpc.test(s.parent))
    .map((s) => `${s.parent.replace(`file://${root}`, "")} imports ${s.specifier}`);
  assert.deepEqual(
    impure,
    [],
    "@berth/proto must stay pure: move code that needs node:* or @grpc/* to @berth/common",
  );
});
