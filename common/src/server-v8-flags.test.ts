import assert from "node:assert/strict";
import { test } from "node:test";
import { SERVER_V8_FLAGS, serverV8Flags } from "./server-v8-flags.js";

const nameOf = (flag: string): string => (flag.split("=")[0] ?? "").replace(/^--(no-)?/, "");

test("a server sets its V8 flags unless its command line names them, in either polarity", () => {
  assert.ok(SERVER_V8_FLAGS.length > 0);
  assert.deepEqual(serverV8Flags([]), SERVER_V8_FLAGS);
  assert.deepEqual(serverV8Flags(["--max-semi-space-size=16", "--import", "tsx"]), SERVER_V8_FLAGS);
  for (const flag of SERVER_V8_FLAGS) {
    const name = nameOf(flag);
    for (const given of [`--${name}=5`, `--${name}`, `--no-${name.replaceAll("-", "_")}`]) {
      assert.ok(!serverV8Flags([given]).includes(flag), `${given} keeps ${flag} from being set`);
    }
    assert.ok(serverV8Flags([`--${name}-x=1`]).includes(flag), "another flag's name is not it");
  }
});
