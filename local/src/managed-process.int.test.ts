import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  type LifecycleEvent,
  ManagedProcess,
  type ProbeAnswer,
  ProcessStartError,
} from "./managed-process.js";

const dir = mkdtempSync(join(tmpdir(), "berth-managed-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const fixture = join(dir, "fixture.mjs");
// Says it is ready only on /readyz (its log line does not count), like Berth's processes.
writeFileSync(
  fixture,
  `import { createServer } from "node:http";
const mode = process.env.FIXTURE_MODE;
if (mode === "fail") { console.error("cannot bind 127.0.0.1:1: EACCES"); process.exit(3); }
if (mode === "ignore-term") process.on("SIGTERM", () => console.log(JSON.stringify({ msg: "ignoring SIGTERM" })));
else process.on("SIGTERM", () => process.exit(0));
let left = mode === "progress" ? 15 : 0;
if (left > 0) setInterval(() => { if (left > 0) left--; }, 300);
createServer((req, res) => {
  const ready = mode !== "not-ready" && left === 0;
  res.writeHead(ready ? 200 : 503, { "content-type": "application/json" });
  const reason = mode === "progress" ? \`recovering \${left} shards\` : "still loading";
  res.end(JSON.stringify(ready ? { ready: true } : { ready: false, reason }));
}).listen(Number(process.env.FIXTURE_PORT ?? 0), "127.0.0.1", () =>
  console.log(JSON.stringify({ level: "info", msg: "fixture serving /readyz", pid: process.pid })),
);
`,
);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function readyz(port: number): Promise<ProbeAnswer> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  const body = (await res.json()) as { ready: boolean; reason?: string };
  return body.ready ? { ready: true } : { ready: false, reason: body.reason };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(
  what: string,
  condition: () => boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function managed(
  mode: string,
  events: LifecycleEvent[] = [],
  lines: string[] = [],
  readyTimeoutMs = 20_000,
) {
  const port = await freePort();
  return new ManagedProcess({
    name: `fixture-${mode}`,
    command: process.execPath,
    args: [fixture],
    cwd: dir,
    env: { ...process.env, FIXTURE_MODE: mode, FIXTURE_PORT: String(port) },
    readiness: () => readyz(port),
    onLine: (line) => lines.push(line),
    onLifecycle: (e) => events.push(e),
    backoff: { initialMs: 50, maxMs: 200 },
    stopTimeoutMs: 300,
    readyTimeoutMs,
  });
}

test("a crashed process is restarted and is ready again", async () => {
  const events: LifecycleEvent[] = [];
  const lines: string[] = [];
  const p = await managed("normal", events, lines);
  await p.start();
  const first = p.pid as number;
  assert.ok(alive(first));
  assert.equal(p.ready, true);
  await waitUntil("its line is relayed", () => lines.length > 0);
  assert.match(lines[0] ?? "", /fixture serving \/readyz/);

  p.kill("SIGKILL");
  const second = await p.waitForRestart();
  assert.notEqual(second, first);
  assert.ok(alive(second));
  assert.equal(p.restarts, 1);
  await waitUntil("the killed process is gone", () => !alive(first));
  const exit = events.find((e) => e.type === "exited");
  assert.deepEqual(exit && { signal: exit.signal, expected: exit.expected }, {
    signal: "SIGKILL",
    expected: false,
  });
  assert.ok(events.some((e) => e.type === "restarting"));

  await p.stop();
  assert.equal(p.pid, undefined);
  assert.ok(!alive(second));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(p.restarts, 1, "a stopped process is not restarted");
});

test("a process that ignores SIGTERM is killed after the stop timeout", async () => {
  const events: LifecycleEvent[] = [];
  const p = await managed("ignore-term", events);
  await p.start();
  const pid = p.pid as number;
  await p.stop();
  assert.ok(!alive(pid));
  assert.ok(events.some((e) => e.type === "stop-timeout" && e.pid === pid));
  const exit = events.find((e) => e.type === "exited");
  assert.equal(exit?.type === "exited" ? exit.signal : undefined, "SIGKILL");
});

test("a process that exits before it is ready fails the start with its last output", async () => {
  const p = await managed("fail");
  await assert.rejects(p.start(), (e: unknown) => {
    assert.ok(e instanceof ProcessStartError);
    assert.equal(e.name, "ProcessStartError");
    assert.equal(
      e.message,
      "fixture-fail exited with code 3 before it was ready; its last output:\n  cannot bind 127.0.0.1:1: EACCES",
    );
    return true;
  });
});

test("a process that keeps saying it is not ready fails the start with its reason and is killed", async () => {
  const events: LifecycleEvent[] = [];
  const p = await managed("not-ready", events, [], 1000);
  await assert.rejects(p.start(), (e: unknown) => {
    assert.ok(e instanceof ProcessStartError);
    assert.match(
      e.message,
      /^fixture-not-ready made no progress towards ready for 1000 ms( \(started \d+ ms ago\))? \(it says: still loading\)/,
    );
    return true;
  });
  const started = events.find((e) => e.type === "started");
  assert.ok(started?.type === "started");
  await waitUntil("the process is gone", () => !alive(started.pid));
});

test("a start that keeps making progress is waited for past the readiness limit", async () => {
  // Not ready for 15 steps of 300 ms, its reason changing at each: longer than 3000 ms
  // in all, never that long without progress.
  const p = await managed("progress", [], [], 3000);
  const t0 = Date.now();
  await p.start();
  assert.equal(p.ready, true);
  assert.ok(Date.now() - t0 >= 3000, "the fixture needs 4.5 s at least");
  await p.stop();
});

test("a child with the parent watch exits when its supervisor dies", async () => {
  const watch = fileURLToPath(new URL("./parent-watch.ts", import.meta.url));
  // sh plays the supervisor: it starts the child in the background and exits.
  const sh = spawn(
    "sh",
    [
      "-c",
      `BERTH_SUPERVISOR_PID=$$ "${process.execPath}" --import tsx --import "${watch}" "${fixture}" >/dev/null 2>&1 & echo $!; sleep 1`,
    ],
    {
      cwd: fileURLToPath(new URL("../../", import.meta.url)),
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  sh.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((r) => sh.on("exit", r));
  const child = Number(out.trim());
  assert.ok(Number.isSafeInteger(child) && child > 0, `child pid from sh: ${JSON.stringify(out)}`);
  await waitUntil("the orphaned child has exited", () => !alive(child));
});
