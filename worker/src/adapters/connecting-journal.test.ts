import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { JournalUnavailableError } from "../journal/errors.js";
import type { Journal } from "../journal/journal.js";
import { ConnectingJournal, type JournalHealthEvent } from "./connecting-journal.js";

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

  test("once connected, calls that keep failing make the journal unavailable; a probe that succeeds makes it usable again", async () => {
    const real = fakeJournal();
    let down = false;
    let probes = 0;
    const unreachable = () => {
      throw new JournalUnavailableError("listPools failed on h:1: no host available", false);
    };
    real.load = async () => {
      if (down) unreachable();
      return { snapshot: undefined, events: [], version: 7, fenceEpoch: 2 };
    };
    real.listPools = async () => {
      probes++;
      if (down) unreachable();
      return [];
    };
    const events: JournalHealthEvent[] = [];
    const changes: (string | undefined)[] = [];
    const j = new ConnectingJournal({
      describe: "Cassandra at h:1",
      backoff: fast,
      connect: async () => real,
      outage: { outageAfterMs: 30, probe: { initialMs: 5, maxMs: 10 }, reportEveryMs: 60_000 },
      onHealthChange: (e) => events.push(e),
    });
    await j.whenConnected();
    j.onChange(() => changes.push(j.unavailableReason()));
    down = true;
    await assert.rejects(j.load("a/b"), JournalUnavailableError);
    assert.equal(j.unavailableReason(), undefined, "one failure is not an outage");
    // No more calls: the probes alone find the outage, then its end.
    await until(() => j.unavailableReason() !== undefined);
    assert.equal(
      j.unavailableReason(),
      "journal unavailable: listPools failed on h:1: no host available",
    );
    assert.equal(events.length, 1);
    assert.equal(events[0]?.state, "down");
    const probesWhileDown = probes;
    down = false;
    await until(() => j.unavailableReason() === undefined);
    assert.ok(probes > probesWhileDown);
    assert.deepEqual(
      events.map((e) => e.state),
      ["down", "up"],
    );
    assert.deepEqual(changes, [
      "journal unavailable: listPools failed on h:1: no host available",
      undefined,
    ]);
    assert.equal((await j.load("a/b")).version, 7);
    await j.close();
  });

  test("a failure followed by a success is no outage, and probing stops", async () => {
    const real = fakeJournal();
    let fail = true;
    let probes = 0;
    real.load = async () => {
      if (fail) throw new JournalUnavailableError("load failed on h:1: timeout", true);
      return { snapshot: undefined, events: [], version: 7, fenceEpoch: 2 };
    };
    real.listPools = async () => {
      probes++;
      return [];
    };
    const events: JournalHealthEvent[] = [];
    const j = new ConnectingJournal({
      describe: "Cassandra at h:1",
      backoff: fast,
      connect: async () => real,
      outage: { outageAfterMs: 60_000, probe: { initialMs: 1, maxMs: 1 } },
      onHealthChange: (e) => events.push(e),
    });
    await j.whenConnected();
    await assert.rejects(j.load("a/b"), JournalUnavailableError);
    fail = false;
    await until(() => probes >= 1);
    const after = probes;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(probes, after, "no probes once the journal answered");
    assert.equal(j.unavailableReason(), undefined);
    assert.deepEqual(events, []);
    await j.close();
  });
});

async function until(condition: () => boolean): Promise<void> {
  const end = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > end) throw new Error("condition not met within 10 s");
    await new Promise((r) => setTimeout(r, 2));
  }
}
