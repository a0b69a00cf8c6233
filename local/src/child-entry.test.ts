import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { childEntry } from "./child-entry.js";

/** A repository shape: worker/src, shared packages' src, and worker/dist/main.js. */
function repo(): string {
  const root = mkdtempSync(join(tmpdir(), "berth-child-entry-"));
  for (const p of ["worker", "proto", "common", "kubernetes"]) {
    mkdirSync(join(root, p, "src", "deep"), { recursive: true });
    writeFileSync(join(root, p, "src", "deep", "x.ts"), "export {};\n");
  }
  const old = new Date(Date.now() - 60_000);
  for (const p of ["worker", "proto", "common", "kubernetes"]) {
    utimesSync(join(root, p, "src", "deep", "x.ts"), old, old);
  }
  return root;
}

test("a bundle newer than every source it was built from runs; a newer source, or none, runs the sources", () => {
  const root = repo();
  try {
    const none = childEntry(root, "worker", "file:///preload.ts");
    assert.equal(none.kind, "sources");
    assert.match(none.reason ?? "", /worker\/dist\/main\.js does not exist/);
    assert.deepEqual(none.nodeArgs, [
      "--import",
      "tsx",
      "--import",
      "file:///preload.ts",
      join(root, "worker/src/main.ts"),
    ]);

    mkdirSync(join(root, "worker", "dist"));
    writeFileSync(join(root, "worker", "dist", "main.js"), "");
    const fresh = childEntry(root, "worker", "file:///preload.ts");
    assert.equal(fresh.kind, "bundle");
    assert.deepEqual(fresh.nodeArgs, [
      "--enable-source-maps",
      "--import",
      "file:///preload.ts",
      join(root, "worker/dist/main.js"),
    ]);

    // A test file changed: the bundle holds no tests, so it is still fresh.
    const later = new Date(Date.now() + 60_000);
    writeFileSync(join(root, "common", "src", "deep", "y.test.ts"), "");
    utimesSync(join(root, "common", "src", "deep", "y.test.ts"), later, later);
    assert.equal(childEntry(root, "worker", "p").kind, "bundle");

    // A shared package's source changed after the build.
    utimesSync(join(root, "common", "src", "deep", "x.ts"), later, later);
    const stale = childEntry(root, "worker", "p");
    assert.equal(stale.kind, "sources");
    assert.equal(stale.reason, "common/src/deep/x.ts changed since npm run build");
    // REPO_ROOT ends with a slash: the path is named whole all the same.
    assert.equal(
      childEntry(`${root}/`, "worker", "p").reason,
      "common/src/deep/x.ts changed since npm run build",
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
