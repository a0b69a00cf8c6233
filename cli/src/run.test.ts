import assert from "node:assert/strict";
import { test } from "node:test";
import { EXIT_OK, EXIT_USAGE, runCli } from "./run.js";

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env: {},
  });
  return { code, stdout, stderr };
}

test("a bad option prints the problem and where the help is, not the whole usage", async () => {
  assert.deepEqual(await run(["reserve", "delivery/north", "-3"]), {
    code: EXIT_USAGE,
    stdout: "",
    stderr:
      'berth: <units> must be an integer from 1 to 1000000, got "-3"\nRun "berth reserve --help" for usage.\n',
  });
  assert.deepEqual(await run(["--bogus"]), {
    code: EXIT_USAGE,
    stdout: "",
    stderr: 'berth: unknown option "--bogus"\nRun "berth --help" for usage.\n',
  });
});

test("--help prints the usage on stdout and exits 0", async () => {
  const r = await run(["reserve", "--help"]);
  assert.equal(r.code, EXIT_OK);
  assert.match(r.stdout, /^Usage: berth reserve <pool> <units>/);
  assert.equal(r.stderr, "");
});
