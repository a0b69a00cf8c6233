#!/usr/bin/env node
// The project's one test command (`npm test`): static checks, then every test file
// under */src, each in its own process on Node's test runner. Ends with the line
// "N passed, N failed[, N skipped]". Arguments filter test files by substring;
// `--static` runs the static checks (and only them unless substrings are given too);
// `--unit` runs only the unit test files (see `tokensOf` below), without static checks.
import { spawnSync } from "node:child_process";
import { existsSync, globSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "node:test";
import { spec } from "node:test/reporters";

const root = new URL("..", import.meta.url).pathname;
const filters = process.argv.slice(2);
const paths = filters.filter((x) => !x.startsWith("--"));
const FLAGS = ["--static", "--unit"];
const unknown = filters.filter((x) => x.startsWith("--") && !FLAGS.includes(x));
if (unknown.length > 0) {
  console.error(
    `berth test: unknown option ${unknown.join(", ")}\n` +
      "usage: npm test [-- [--static] [--unit] [<path substring>…]]",
  );
  process.exit(2);
}
const unitOnly = filters.includes("--unit");
let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];

const major = Number(process.versions.node.split(".")[0]);
if (major !== 24) {
  console.error(
    `berth test: running on Node ${process.version}; run through npm so the pinned Node 24 (devDependency "node") is used.`,
  );
  process.exit(1);
}

function check(name, cmd, args, cwd = root) {
  const started = Date.now();
  process.stdout.write(`▶ ${name} … `);
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8" });
  const ms = Date.now() - started;
  if (r.status === 0) {
    passed++;
    console.log(`ok (${ms} ms)`);
  } else {
    failed++;
    failures.push(name);
    console.log(`FAILED (${ms} ms)`);
    console.log((r.stdout ?? "") + (r.stderr ?? "") + (r.error ? String(r.error) : ""));
  }
}

const bin = (n) => `${root}node_modules/.bin/${n}`;
if (filters.length === 0 || filters.includes("--static")) {
  check("format and lint (biome check)", bin("biome"), ["check", "."]);
  check("type check (tsc)", bin("tsc"), ["-p", "tsconfig.json"]);
  check("proto lint (buf lint)", bin("buf"), ["lint"], `${root}proto`);
  const against = breakingBaseline();
  if (against === undefined) {
    console.log(
      "▶ proto compatibility (buf breaking) … skipped: no earlier commit to compare with",
    );
  } else {
    check(
      `proto compatibility (buf breaking against ${against})`,
      bin("buf"),
      ["breaking", "--against", `${root}.git#ref=${against},subdir=proto`],
      `${root}proto`,
    );
  }
}

/**
 * What `buf breaking` compares the .proto files with: BERTH_BUF_AGAINST if set; on a
 * branch other than main, main (what the branch would change); on main, the previous
 * commit (what the newest commit changed). Undefined when that ref does not exist
 * (a shallow clone of one commit).
 */
function breakingBaseline() {
  const git = (...args) => spawnSync("git", args, { cwd: root, encoding: "utf8" });
  const branch = git("rev-parse", "--abbrev-ref", "HEAD").stdout?.trim();
  const ref =
    process.env.BERTH_BUF_AGAINST ||
    (branch !== undefined && branch !== "main" ? "main" : "HEAD~1");
  return git("rev-parse", "--verify", "--quiet", `${ref}^{commit}`).status === 0 ? ref : undefined;
}

// What a test file needs is named by the tokens in its file name between its base name
// and ".test.ts": `dry-run.helm.k8s.int.test.ts` has the tokens helm, k8s and int.
// A file without tokens is a unit test (no servers, no child processes, no JVM, no
// Go binaries: pure functions and in-memory objects, at most reading files of the
// repository); `int` marks an integration test, the others what it needs (below).
const tokensOf = (f) =>
  (f.split("/").pop() ?? "")
    .replace(/\.test\.ts$/, "")
    .split(".")
    .slice(1);

const files = globSync(["*/src/**/*.test.ts"], {
  cwd: root,
  exclude: (f) => f.includes("node_modules"),
})
  // `--static` alone runs the static checks only; with substrings or `--unit`, files too.
  .filter((f) =>
    paths.length === 0
      ? unitOnly || !filters.includes("--static")
      : paths.some((x) => f.includes(x)),
  )
  .filter((f) => !unitOnly || tokensOf(f).length === 0)
  .sort()
  .map((f) => `${root}${f}`);

// Some test files need project-built Go binaries, named by a token in the file name:
//   k8s      → etcd, kube-apiserver, kubectl (a real control plane)
//   node     → kubelet, kube-proxy, kube-controller-manager, kube-scheduler (a real node)
//   helm     → helm
//   promtool → promtool
// Build or reuse them first, in one call, with progress on the console and outside any
// per-file timeout (a cold build takes many minutes). Without Go, skip those files visibly.
const NEEDS = {
  k8s: ["etcd", "kube-apiserver", "kubectl"],
  node: ["kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler"],
  helm: ["helm"],
  promtool: ["promtool"],
};
const neededCommands = (f) => tokensOf(f).flatMap((t) => NEEDS[t] ?? []);
const goFiles = files.filter((f) => neededCommands(f).length > 0);
if (goFiles.length > 0) {
  const commands = [...new Set(goFiles.flatMap(neededCommands))];
  const go = process.env.BERTH_GO || "go";
  const probe = spawnSync(go, ["version"], { encoding: "utf8" });
  const dropGoFiles = () => {
    for (const f of goFiles) files.splice(files.indexOf(f), 1);
  };
  if (probe.error || probe.status !== 0) {
    console.log(
      `▶ SKIP ${goFiles.length} test file(s) that need Go-built binaries: "${go}" is not runnable ` +
        `(${probe.error?.message ?? `exit ${probe.status}`}); install Go >= 1.26 (or set BERTH_GO) ` +
        `to build ${commands.join(", ")}`,
    );
    for (const f of goFiles) console.log(`  ﹣ ${f.replace(root, "")}`);
    skipped += goFiles.length;
    dropGoFiles();
  } else {
    console.log(
      `▶ ${commands.join(", ")} for ${goFiles.length} test file(s) (${probe.stdout.trim()}):`,
    );
    const started = Date.now();
    const r = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "testing/src/kubernetes/cli.ts",
        "build",
        "--commands",
        commands.join(","),
      ],
      { cwd: root, stdio: ["ignore", "inherit", "inherit"] },
    );
    if (r.status === 0) {
      console.log(`▶ binaries ready (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    } else {
      failed++;
      failures.push(`binaries build (npm run k8s -- build --commands ${commands.join(",")})`);
      console.log(`▶ binaries build FAILED (${r.error ?? `exit ${r.status}`}); not running:`);
      for (const f of goFiles) console.log(`  ✖ ${f.replace(root, "")}`);
      dropGoFiles();
    }
  }
}

// Files with the `cassandra` token run against one Cassandra node for the whole run,
// which they find in BERTH_CASSANDRA=host:port (each file uses keyspaces of its own). It
// starts here, outside any file's timeout, and stops when the run ends, however it ends
// (the harness kills its JVM when this process exits or is signalled). A BERTH_CASSANDRA
// set by the caller names a running node to use instead. Without Java no node starts and
// the files skip, saying why. Files that need a node of their own (the harness's tests,
// a node requiring a login, faults that stop the node) start it themselves.
// BERTH_CASSANDRA_BOOT_LOG collects one line per JVM any process of the run starts.
const bootLog = join(tmpdir(), `berth-test-${process.pid}-cassandra-boots`);
process.env.BERTH_CASSANDRA_BOOT_LOG = bootLog;
const cassandraBoots = () => {
  try {
    return readFileSync(bootLog, "utf8").split("\n").filter(Boolean).length;
  } catch {
    return 0;
  }
};
const cassandraFiles = files.filter((f) => tokensOf(f).includes("cassandra"));
let sharedCassandra;
if (cassandraFiles.length > 0 && process.env.BERTH_CASSANDRA) {
  console.log(
    `▶ Cassandra for ${cassandraFiles.length} test file(s): the node at ${process.env.BERTH_CASSANDRA} (BERTH_CASSANDRA)`,
  );
} else if (cassandraFiles.length > 0) {
  const { tsImport } = await import("tsx/esm/api");
  const harness = await tsImport("../testing/src/cassandra/cassandra-node.ts", import.meta.url);
  if (!harness.javaAvailable()) {
    console.log(
      `▶ no Cassandra node for ${cassandraFiles.length} test file(s): java is not runnable`,
    );
  } else {
    console.log(`▶ one Cassandra node for ${cassandraFiles.length} test file(s):`);
    try {
      sharedCassandra = await harness.startCassandra({
        // It serves what two files' nodes did, two at a time.
        heapMb: 1024,
        log: (line) => console.log(`  [cassandra] ${line}`),
      });
      process.env.BERTH_CASSANDRA = sharedCassandra.contactPoint;
    } catch (e) {
      failed++;
      failures.push("the run's Cassandra node (testing/src/cassandra/cassandra-node.ts)");
      console.log(`▶ Cassandra node FAILED to start: ${e?.message ?? e}; not running:`);
      for (const f of cassandraFiles) {
        console.log(`  ✖ ${f.replace(root, "")}`);
        files.splice(files.indexOf(f), 1);
      }
    }
  }
}
/** Stops the run's Cassandra node and prints how many JVMs the run started. */
async function stopCassandra() {
  await sharedCassandra?.stop();
  const boots = cassandraBoots();
  rmSync(bootLog, { force: true });
  if (boots > 0) {
    console.log(
      `\n▶ Cassandra JVMs started in this run: ${boots}` +
        (sharedCassandra ? ` (one shared by ${cassandraFiles.length} file(s))` : ""),
    );
  }
}

// Time limits. A test gets BERTH_TEST_TIMEOUT_MS unless it sets its own timeout:
// run()'s `timeout` is a default for each test inside a file, not a limit on the file.
// A file's process is ended its budget after it started (scripts/test-file-limits.mjs),
// whatever keeps it running: a hung hook, or a handle left open after its tests, which
// would otherwise hold the whole run. The watchdog ends a run that still has not
// finished, naming the files still running. Sized from a full run on a fresh clone (2
// shared cores, load 10–14; each run prints its ten slowest files): the slowest suites
// took 5.5 minutes (helm install on a real node) and 4.1 (the test cluster), all files
// together 19 minutes. The two files that build the container image (5–7 minutes cold
// on 2 cores) get their own before() hook's bound and 5 minutes more, so that the hook
// fails first, saying so.
const TEST_TIMEOUT_MS = Number(process.env.BERTH_TEST_TIMEOUT_MS ?? 10 * 60_000);
const FILE_TIMEOUT_MS = Number(process.env.BERTH_TEST_FILE_TIMEOUT_MS ?? 15 * 60_000);
const LONGER_FILE_TIMEOUTS_MS = {
  "e2e/src/image/image.int.test.ts": 35 * 60_000,
  "e2e/src/install/helm-install.k8s.node.helm.int.test.ts": 45 * 60_000,
};
const RUN_TIMEOUT_MS = Number(process.env.BERTH_TEST_RUN_TIMEOUT_MS ?? 50 * 60_000);
for (const f of Object.keys(LONGER_FILE_TIMEOUTS_MS)) {
  if (!existsSync(`${root}${f}`)) {
    console.error(`berth test: LONGER_FILE_TIMEOUTS_MS names ${f}, which does not exist`);
    process.exit(2);
  }
}
const rel = (f) => f.replace(root, "");
const fileTimeoutMs = (f) => Math.max(FILE_TIMEOUT_MS, LONGER_FILE_TIMEOUTS_MS[rel(f)] ?? 0);
process.env.BERTH_TEST_FILE_TIMEOUTS = JSON.stringify(
  Object.fromEntries(files.map((f) => [f, fileTimeoutMs(f)])),
);
const minutes = (ms) =>
  ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${+(ms / 60_000).toFixed(1)} min`;
/** Wall time of each finished file, from node:test's file-level test:complete. */
const durations = new Map();
const fileStarts = new Map();
function printSlowest() {
  const slowest = [...durations].sort((a, b) => b[1] - a[1]).slice(0, 10);
  if (slowest.length < 2) return;
  console.log("\nSlowest test files:");
  for (const [f, ms] of slowest) {
    console.log(`  ${(ms / 1000).toFixed(1).padStart(7)} s  ${rel(f)}`);
  }
}

console.log(`▶ ${files.length} test files`);
if (files.length === 0) {
  // node:test's run() with no files would fall back to its default glob: run nothing.
  await stopCassandra();
  if (failures.length) for (const f of failures) console.log(`  ✖ ${f}`);
  console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(failed > 0 || passed === 0 ? 1 : 0);
}
const stream = run({
  files,
  concurrency: Number(process.env.BERTH_TEST_CONCURRENCY ?? 2),
  timeout: TEST_TIMEOUT_MS,
  // Not --test-force-exit: it ends a file's process before tests inside describe()
  // blocks have been registered, silently dropping them. Leaked handles are caught by
  // each file's deadline instead.
  execArgv: ["--import", "tsx", "--import", `${root}scripts/test-file-limits.mjs`],
  cwd: root,
});
const watchdog = setTimeout(() => {
  console.log(
    `\nberth test: the run exceeded ${minutes(RUN_TIMEOUT_MS)} (BERTH_TEST_RUN_TIMEOUT_MS).`,
  );
  console.log("Files still running, or not started:");
  for (const f of files.filter((f) => !durations.has(f))) {
    const since = fileStarts.get(f);
    console.log(
      `  ✖ ${rel(f)}${since === undefined ? " (not started)" : ` (for ${minutes(Date.now() - since)})`}`,
    );
  }
  printSlowest();
  // The run's Cassandra JVM is killed on exit; its boots are still worth knowing.
  const boots = cassandraBoots();
  rmSync(bootLog, { force: true });
  if (boots > 0) console.log(`\n▶ Cassandra JVMs started in this run: ${boots}`);
  console.log(`\n${passed} passed, ${failed + 1} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(1);
}, RUN_TIMEOUT_MS);
watchdog.unref();
// A file's own events carry its path as their name.
const isFileEvent = (e) => e.file !== undefined && e.name === e.file;
stream.on("test:dequeue", (e) => {
  if (isFileEvent(e)) fileStarts.set(e.file, Date.now());
});
stream.on("test:complete", (e) => {
  if (isFileEvent(e)) durations.set(e.file, e.details?.duration_ms ?? 0);
});
stream.on("test:pass", (e) => {
  // A skipped describe() registers none of its tests: count it once, visibly.
  if (e.details?.type === "suite") {
    if (e.skip) skipped++;
    return;
  }
  if (e.skip || e.todo) skipped++;
  else passed++;
});
stream.on("test:fail", (e) => {
  if (e.details?.type === "suite" && e.details?.error?.failureType === "subtestsFailed") return;
  failed++;
  if (isFileEvent(e)) {
    // The process failed apart from its tests: it exited with an error, or ran out of time.
    const code = e.details?.error?.exitCode;
    failures.push(
      `${rel(e.file)}: ${
        code === 124
          ? `ended ${minutes(fileTimeoutMs(e.file))} after it started, still running (its output says what it held)`
          : code === 125
            ? "used more memory than BERTH_TEST_FILE_RSS_LIMIT_MB (its output says where, and names a diagnostic report)"
            : e.details?.error?.signal === "SIGKILL"
              ? "its process died of SIGKILL (the kernel's OOM killer? see `dmesg | grep -i oom`)"
              : `its process ${e.details?.error?.signal ? `died of ${e.details.error.signal}` : `exited with code ${code}`}`
      }`,
    );
    return;
  }
  failures.push(`${e.file ? `${rel(e.file)}: ` : ""}${e.name}`);
});
stream.compose(spec).pipe(process.stdout);
await new Promise((resolve) => stream.on("end", resolve));
// Let the reporter flush.
await new Promise((resolve) => setImmediate(resolve));
await stopCassandra();
printSlowest();
if (failures.length) {
  console.log("\nFailed:");
  for (const f of failures) console.log(`  ✖ ${f}`);
}
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
