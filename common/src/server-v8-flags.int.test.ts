import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { SERVER_V8_FLAGS } from "./server-v8-flags.js";

// v8.setFlagsFromString ignores a flag V8 does not know; node's command line refuses
// one. So a Node whose V8 dropped or renamed a flag fails here, not silently in RSS.
test("this Node's V8 knows every flag the servers set", () => {
  const r = spawnSync(process.execPath, [...SERVER_V8_FLAGS, "-e", ""], { encoding: "utf8" });
  assert.equal(r.stderr, "");
  assert.equal(r.status, 0);
  const bad = spawnSync(process.execPath, ["--heap-growing-percentage=20", "-e", ""], {
    encoding: "utf8",
  });
  assert.notEqual(bad.status, 0, "a flag V8 does not know is refused on the command line");
});
