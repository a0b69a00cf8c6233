// Loaded (--import) into every test file's process by scripts/test.mjs. Bounds the file's
// time and memory, so that one file cannot hold or sink the whole run:
//
// - Time: ends the process once its file's time is up, whatever keeps it running — a
//   test or hook past its own timeout, or a handle left open after the tests (a server,
//   a child, an interval). The runner names each file's budget in
//   BERTH_TEST_FILE_TIMEOUTS ({ "<absolute path>": ms }); a file run any other way has
//   none. Exits with 124 (as timeout(1) does), which the runner reports.
// - Memory: ends the process when its resident memory passes BERTH_TEST_FILE_RSS_LIMIT_MB
//   (default 6144), after writing a Node diagnostic report (JS and native stacks, handles,
//   heap spaces) and printing where the memory is (V8 heap, ArrayBuffers, other native).
//   Without it, a file that runs away takes the machine's memory until the kernel's OOM
//   killer ends the largest process — this file, or an innocent Cassandra node or
//   kube-apiserver another file needs — with nothing said about why (CI, 2026-12-04: a
//   test file at 21 GB, 17 GB of it outside the V8 heap). Exits with 125.
import { writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const file = process.argv[1];

/** Writes synchronously: process.exit does not wait for a pipe to drain. */
const say = (text) => writeSync(2, `\nberth test: ${file} ${text}\n`);

/** What keeps the event loop alive, counted by kind. */
function activeResources() {
  const held = {};
  for (const r of process.getActiveResourcesInfo()) held[r] = (held[r] ?? 0) + 1;
  const list = Object.entries(held)
    .map(([r, n]) => `${r} ×${n}`)
    .join(", ");
  return list || "none";
}

const ms = JSON.parse(process.env.BERTH_TEST_FILE_TIMEOUTS ?? "{}")[file ?? ""];
if (typeof ms === "number" && ms > 0) {
  setTimeout(() => {
    say(
      `was still running ${+(ms / 60_000).toFixed(1)} min after it started (its budget: see ` +
        "BERTH_TEST_FILE_TIMEOUT_MS in scripts/test.mjs): a hook past its timeout, or a handle " +
        `keeping the process alive after its tests; ending it. Active resources: ${activeResources()}`,
    );
    process.exit(124);
  }, ms).unref();
}

const limitMb = Number(process.env.BERTH_TEST_FILE_RSS_LIMIT_MB ?? 6144);
if (Number.isFinite(limitMb) && limitMb > 0) {
  const mb = (bytes) => Math.round(bytes / 2 ** 20);
  setInterval(() => {
    if (process.memoryUsage.rss() <= limitMb * 2 ** 20) return;
    const m = process.memoryUsage();
    let report = "";
    try {
      report = process.report.writeReport(join(tmpdir(), `berth-test-report-${process.pid}.json`));
    } catch (e) {
      report = `(no report: ${e?.message ?? e})`;
    }
    say(
      `uses ${mb(m.rss)} MB of memory, over the limit of ${limitMb} MB ` +
        "(BERTH_TEST_FILE_RSS_LIMIT_MB); ending it. " +
        `V8 heap ${mb(m.heapUsed)} of ${mb(m.heapTotal)} MB, ArrayBuffers ${mb(m.arrayBuffers)} MB, ` +
        `other external ${mb(m.external - m.arrayBuffers)} MB, the rest native ` +
        `(${mb(m.rss - m.heapTotal - m.external)} MB). Active resources: ${activeResources()}. ` +
        `Diagnostic report: ${report}`,
    );
    process.exit(125);
  }, 1_000).unref();
}
