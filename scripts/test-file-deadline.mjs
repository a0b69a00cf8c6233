// Loaded (--import) into every test file's process by scripts/test.mjs: ends the process
// once its file's time is up, whatever keeps it running — a test or hook past its own
// timeout, or a handle left open after the tests (a server, a child, an interval) that
// would otherwise keep the process, and the whole run, waiting. The runner names each
// file's budget in BERTH_TEST_FILE_TIMEOUTS ({ "<absolute path>": ms }); a file run any
// other way has none. Exits with 124 (as timeout(1) does), which the runner reports.
import { writeSync } from "node:fs";

const file = process.argv[1];
const ms = JSON.parse(process.env.BERTH_TEST_FILE_TIMEOUTS ?? "{}")[file ?? ""];
if (typeof ms === "number" && ms > 0) {
  setTimeout(() => {
    const held = {};
    for (const r of process.getActiveResourcesInfo()) held[r] = (held[r] ?? 0) + 1;
    const holding = Object.entries(held)
      .map(([r, n]) => `${r} ×${n}`)
      .join(", ");
    // Synchronously: process.exit does not wait for a pipe to drain.
    writeSync(
      2,
      `\nberth test: ${file} was still running ${+(ms / 60_000).toFixed(1)} min after it ` +
        "started (its budget: see BERTH_TEST_FILE_TIMEOUT_MS in scripts/test.mjs): a hook past " +
        "its timeout, or a handle keeping the process alive after its tests; ending it. " +
        `Active resources: ${holding || "none"}\n`,
    );
    process.exit(124);
  }, ms).unref();
}
