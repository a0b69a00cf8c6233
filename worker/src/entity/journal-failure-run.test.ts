import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type FailureLog,
  JOURNAL_WARN_EVERY_MS,
  JournalFailureRun,
} from "./journal-failure-run.js";

/** A log that records each line as "level msg failuresInARow". */
function recordingLog(): FailureLog & { readonly lines: string[] } {
  const lines: string[] = [];
  const line = (level: string) => (fields: object, msg: string) => {
    const count = (fields as { failuresInARow?: number }).failuresInARow;
    lines.push(`${level} ${msg}${count === undefined ? "" : ` ${count}`}`);
  };
  return { lines, warn: line("warn"), debug: line("debug") };
}

test("the first failure of a run warns; the next ones within the interval go to debug", () => {
  const log = recordingLog();
  const run = new JournalFailureRun();
  run.failed(log, {}, "load failed", 1_000);
  run.failed(log, {}, "load failed", 1_010);
  run.failed(log, {}, "load failed", 1_000 + JOURNAL_WARN_EVERY_MS - 1);
  assert.deepEqual(log.lines, ["warn load failed 1", "debug load failed", "debug load failed"]);
  assert.equal(run.failures, 3);
});

test("a run that lasts warns again once per interval, with the count so far", () => {
  const log = recordingLog();
  const run = new JournalFailureRun();
  run.failed(log, {}, "f", 0);
  run.failed(log, {}, "f", JOURNAL_WARN_EVERY_MS);
  run.failed(log, {}, "f", JOURNAL_WARN_EVERY_MS + 1);
  run.failed(log, {}, "f", 2 * JOURNAL_WARN_EVERY_MS);
  assert.deepEqual(log.lines, ["warn f 1", "warn f 2", "debug f", "warn f 4"]);
});

test("a warning carries the caller's fields; a debug line carries them unchanged", () => {
  const seen: object[] = [];
  const log: FailureLog = { warn: (f) => seen.push(f), debug: (f) => seen.push(f) };
  const run = new JournalFailureRun();
  run.failed(log, { attempt: 3 }, "fence failed", 0);
  run.failed(log, { attempt: 4 }, "fence failed", 1);
  assert.deepEqual(seen, [{ attempt: 3, failuresInARow: 1 }, { attempt: 4 }]);
});
