import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { JournalUnavailableError } from "../journal/errors.js";
import type { Journal } from "../journal/journal.js";
import { ConnectingJournal, connectDelayMs } from "./connecting-journal.js";

function fakeJournal(): Journal & { closed: number } {
  const j = {
    closed: 0,
    fence: async () => undefined,
    load: async () => ({ snapshot: undefined, events: [], version: 7, fenceEpoch: 2 }),
    append: async () => 1,
    saveSnapshot: async () => undefined,
    listPools: async () => ["a/b"],
    close: async () => {
      j.closed++;
    },
  };
  return j;
}

const fast = { initialMs: 1, maxMs: 4 };

describe("the connecting journal", () => {
  test("retry delays double from the initial delay up to the cap", () => {
    const b = { initialMs: 250, maxMs: 5000 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 100].map((a) => connectDelayMs(a, b)),
      [250, 500, 1000, 2000, 4000, 5000, 5000, 5000],
    );
  });

  test("until it connects every call fails as unavailable with the reason, then it delegates", async () => {
    const real = fakeJournal();
    let attempts = 0;
    const failures: number[] = [];
    const j = new ConnectingJournal({
      describe: "Cassandra at h:1",
      backoff: fast,
      connect: async () => {
        attempts++;
        if (attempts < 3) {
          throw new JournalUnavailableError("cannot connect to Cassandra at h:1: refused", false);
        }
        return real;
      },
      onAttemptFailed: (_e, attempt) => failures.push(attempt),
    });
    assert.throws(
      () => j.load("a/b"),
      (e: unknown) =>
        e instanceof JournalUnavailableError &&
        e.outcomeUnknown === false &&
        /^load: journal unavailable: /.test(e.message),
    );
    await j.whenConnected();
    assert.equal(j.unavailableReason(), undefined);
    assert.deepEqual(failures, [1, 2]);
    assert.equal((await j.load("a/b")).version, 7);
    assert.deepEqual(await j.listPools(0), ["a/b"]);
    await j.close();
    assert.equal(real.closed, 1);
  });

  test("the reason names the last connection failure", async () => {
    let fail!: () => void;
    const failed = new Promise<void>((r) => {
      fail = r;
    });
    const j = new ConnectingJournal({
      describe: "Cassandra at h:1",
      backoff: { initialMs: 60_000, maxMs: 60_000 },
      connect: async () => {
        throw new JournalUnavailableError("cannot connect to Cassandra at h:1: refused", false);
      },
      onAttemptFailed: () => fail(),
    });
    await failed;
    assert.equal(
      j.unavailableReason(),
      "journal unavailable: cannot connect to Cassandra at h:1: refused",
    );
    // Closing wakes the retry wait instead of sleeping it out, and whenConnected rejects.
    await j.close();
    await assert.rejects(j.whenConnected(), /closed before connecting to Cassandra at h:1/);
  });

  test("an error other than unavailability is fatal: no more attempts", async () => {
    let attempts = 0;
    const j = new ConnectingJournal({
      describe: "Cassandra at h:1",
      backoff: fast,
      connect: async () => {
        attempts++;
        throw new RangeError("bucketSize must be positive");
      },
    });
    await assert.rejects(j.whenConnected(), /bucketSize must be positive/);
    assert.equal(attempts, 1);
    assert.equal(j.unavailableReason(), "journal failed: bucketSize must be positive");
    await j.close();
  });
});
