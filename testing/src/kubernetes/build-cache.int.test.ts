// The build cache's lock and completeness checks, on the real file system with real
// processes (no Go build: that is exercised by the control-plane test's first run).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { isBinaryComplete } from "./build.js";
import { COMMANDS, cacheLayout, expectedStamp } from "./build-config.js";
import { isAlive, withFileLock } from "./build-lock.js";

const node = process.execPath;
const lockModule = new URL("./build-lock.ts", import.meta.url).pathname;

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "berth-k8s-cache-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function waitUntil(
  what: string,
  cond: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("two builders in one process never hold the lock at once", async (t) => {
  const dir = await tempDir(t);
  const lock = join(dir, "build.lock");
  const events: string[] = [];
  const section = (name: string) => async (): Promise<void> => {
    events.push(`enter ${name}`);
    await new Promise((r) => setTimeout(r, 100));
    events.push(`exit ${name}`);
  };
  await Promise.all([
    withFileLock(lock, section("a"), { pollMs: 20 }),
    withFileLock(lock, section("b"), { pollMs: 20 }),
  ]);
  assert.equal(events.length, 4);
  // Strict alternation: each enter is followed by its own exit.
  assert.equal(events[0]?.replace("enter", "exit"), events[1]);
  assert.equal(events[2]?.replace("enter", "exit"), events[3]);
  await assert.rejects(readFile(lock), { code: "ENOENT" });
});

test("a lock held by another live process is waited for, then taken when it lets go", async (t) => {
  const dir = await tempDir(t);
  const lock = join(dir, "build.lock");
  const entered = join(dir, "holder-entered");
  // The holder takes the lock and keeps it until its stdin closes.
  const holder = spawn(
    node,
    [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      `import { withFileLock } from ${JSON.stringify(lockModule)};
       import { writeFileSync } from "node:fs";
       await withFileLock(${JSON.stringify(lock)}, async () => {
         writeFileSync(${JSON.stringify(entered)}, "1");
         await new Promise((r) => process.stdin.on("close", r).resume());
       });`,
    ],
    { stdio: ["pipe", "inherit", "inherit"] },
  );
  t.after(() => {
    holder.kill("SIGKILL");
  });
  const holderExited = new Promise((r) => holder.once("exit", r));
  await waitUntil("the holder to take the lock", () =>
    readFile(entered).then(
      () => true,
      () => false,
    ),
  );
  assert.equal(Number(await readFile(lock, "utf8")), holder.pid);
  const waitedFor: number[] = [];
  let acquired = false;
  const mine = withFileLock(
    lock,
    async () => {
      acquired = true;
    },
    { pollMs: 20, noticeEveryMs: 0, onWait: (pid) => waitedFor.push(pid) },
  );
  await waitUntil("a wait notice naming the holder", async () => waitedFor.length > 0);
  assert.equal(acquired, false, "must not enter while the holder is alive");
  assert.equal(waitedFor[0], holder.pid);
  holder.stdin?.end();
  await mine;
  assert.equal(acquired, true);
  await holderExited;
});

test("a stale lock of a dead process, or a torn one, is taken over", async (t) => {
  const dir = await tempDir(t);
  const lock = join(dir, "build.lock");
  const dead = spawn(node, ["-e", "0"], { stdio: "ignore" });
  const deadPid = dead.pid as number;
  await new Promise((r) => dead.once("exit", r));
  await waitUntil("the pid to be gone", async () => !isAlive(deadPid));
  for (const content of [String(deadPid), "", "not a pid"]) {
    await writeFile(lock, content);
    let ran = false;
    await withFileLock(
      lock,
      async () => {
        ran = true;
        assert.equal(Number(await readFile(lock, "utf8")), process.pid);
      },
      { timeoutMs: 30_000, pollMs: 20 },
    );
    assert.ok(ran, `lock containing "${content}" was not taken over`);
  }
});

test("a binary counts as built only with a matching stamp and its recorded size", async (t) => {
  const dir = await tempDir(t);
  const layout = cacheLayout(dir, "v1.36.3");
  const versions = { kubernetes: "v1.36.3", etcd: "v3.6.16" };
  const spec = COMMANDS.kubectl;
  assert.ok(spec);
  await mkdir(layout.bin, { recursive: true });
  const bin = join(layout.bin, "kubectl");
  const stamp = join(layout.bin, ".kubectl.stamp.json");
  assert.equal(await isBinaryComplete(layout, spec, versions), false, "nothing there");
  await writeFile(bin, "x".repeat(1000));
  assert.equal(
    await isBinaryComplete(layout, spec, versions),
    false,
    "binary without stamp (interrupted build)",
  );
  await writeFile(stamp, JSON.stringify({ ...expectedStamp(spec, versions), size: 1000 }));
  assert.equal(await isBinaryComplete(layout, spec, versions), true);
  assert.equal(
    await isBinaryComplete(layout, spec, { ...versions, kubernetes: "v1.36.4" }),
    false,
    "other version",
  );
  await truncate(bin, 10);
  assert.equal(await isBinaryComplete(layout, spec, versions), false, "truncated binary");
  await writeFile(stamp, "{ torn");
  assert.equal(await isBinaryComplete(layout, spec, versions), false, "torn stamp");
});
