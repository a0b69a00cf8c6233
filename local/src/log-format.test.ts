import assert from "node:assert/strict";
import { test } from "node:test";
import { formatLogLine } from "./log-format.js";

const line = JSON.stringify({
  level: "info",
  time: "2026-11-27T10:00:01.123Z",
  pid: 42,
  component: "worker",
  msg: "worker listening",
  worker: "worker-0",
  grpc: "127.0.0.1:50061",
  note: "two words",
});

test("json format keeps the child's event and adds the process name first", () => {
  const out = formatLogLine("worker-0", line, { format: "json" });
  assert.deepEqual(JSON.parse(out), { proc: "worker-0", ...JSON.parse(line) });
  assert.ok(out.startsWith('{"proc":"worker-0",'));
});

test("json format wraps lines that are not JSON, stderr as errors", () => {
  const out = JSON.parse(
    formatLogLine("gateway", "Error: boom", { format: "json", stream: "stderr" }),
  );
  assert.equal(out.proc, "gateway");
  assert.equal(out.level, "error");
  assert.equal(out.msg, "Error: boom");
});

test("pretty format prints one prefixed line with level, message and fields", () => {
  const out = formatLogLine("worker-0", line, { format: "pretty", nameWidth: 9 });
  assert.match(
    out,
    /^worker-0 {2}│ \d\d:\d\d:01\.123 INFO {2}worker listening grpc=127\.0\.0\.1:50061 note="two words"$/,
  );
  assert.equal(
    formatLogLine(
      "worker-1",
      JSON.stringify({ level: 50, msg: "x", err: { type: "Error", message: "boom" } }),
      {
        format: "pretty",
      },
    ),
    'worker-1 │ ERROR x err="Error: boom"',
  );
  assert.equal(formatLogLine("w", "plain text", { format: "pretty" }), "w │ plain text");
});
