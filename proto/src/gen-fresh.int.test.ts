import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { globSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

const root = new URL("../..", import.meta.url).pathname;
const protoDir = join(root, "proto");
const committedDir = join(protoDir, "src/gen");

function filesUnder(dir: string): string[] {
  return globSync("**/*", { cwd: dir, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();
}

test("the committed generated code in proto/src/gen is what npm run proto:gen produces now", () => {
  const out = mkdtempSync(join(tmpdir(), "berth-gen-fresh-"));
  try {
    const r = spawnSync(process.execPath, [join(root, "scripts/proto-gen.mjs"), "--out", out], {
      cwd: root,
      encoding: "utf8",
    });
    assert.equal(r.status, 0, `proto-gen failed:\n${r.stdout}${r.stderr}${r.error ?? ""}`);
    const freshDir = join(out, "src/gen");
    const fresh = filesUnder(freshDir);
    const committed = filesUnder(committedDir);
    assert.ok(fresh.length > 0, `buf generate wrote nothing under ${freshDir}`);

    const problems: string[] = [];
    for (const f of fresh) {
      if (!committed.includes(f)) problems.push(`proto/src/gen/${f}: missing (not committed)`);
      else if (!readFileSync(join(freshDir, f)).equals(readFileSync(join(committedDir, f)))) {
        problems.push(`proto/src/gen/${f}: stale (differs from a fresh generation)`);
      }
    }
    for (const f of committed) {
      if (!fresh.includes(f)) problems.push(`proto/src/gen/${f}: no longer generated (delete it)`);
    }
    assert.deepEqual(
      problems,
      [],
      `proto/src/gen does not match the .proto files; run \`npm run proto:gen\` and commit:\n  ${problems.join("\n  ")}`,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
