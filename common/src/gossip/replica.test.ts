import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { internal, MAX_PAGE_SIZE, parseLabelSelector } from "@berth/proto";
import fc from "fast-check";
import { decodePageToken, encodePageToken, InvalidPageTokenError } from "./page-token.js";
import { type AvailabilityQuery, InvalidPageSizeError, Replica } from "./replica.js";

const ts = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });

function pool(
  id: string,
  version: number,
  more: Partial<Omit<internal.PoolCounters, "window">> & {
    window?: { startMs: number; endMs: number };
  } = {},
): internal.PoolCounters {
  const { window, ...rest } = more;
  return internal.PoolCounters.fromPartial({
    pool: id,
    version,
    capacity: 10,
    reserved: 0,
    ...rest,
    ...(window ? { window: { start: ts(window.startMs), end: ts(window.endMs) } } : {}),
  });
}

function clock(start = 1_000_000) {
  const c = { ms: start, now: () => c.ms };
  return c;
}

const all: AvailabilityQuery = { minUnits: 0, includeClosed: true, pageSize: 0, pageToken: "" };
const ids = (r: Replica, q: Partial<AvailabilityQuery> = {}) =>
  r.query({ ...all, ...q }).pools.map((p) => p.counters.pool);

describe("Replica.apply", () => {
  test("a higher version replaces the entry and a lower one is ignored", () => {
    const r = new Replica(clock().now);
    assert.equal(r.apply([pool("ns/a", 5, { reserved: 5 })]), 1);
    assert.equal(r.apply([pool("ns/a", 7, { reserved: 7 })]), 1);
    assert.equal(r.apply([pool("ns/a", 6, { reserved: 6 })]), 0);
    assert.equal(r.get("ns/a")?.counters.reserved, 7);
    assert.equal(r.get("ns/a")?.counters.version, 7);
    assert.equal(r.size, 1);
  });

  test("an equal version only refreshes the confirmation time", () => {
    const c = clock();
    const r = new Replica(c.now);
    r.apply([pool("ns/a", 3, { reserved: 1 })]);
    c.ms += 500;
    assert.equal(r.apply([pool("ns/a", 3, { reserved: 9 })]), 0);
    assert.equal(
      r.get("ns/a")?.counters.reserved,
      1,
      "the equal version did not replace the counters",
    );
    assert.equal(r.get("ns/a")?.confirmedAtMs, c.ms);
  });

  test("a lower version does not refresh the confirmation time", () => {
    const c = clock();
    const r = new Replica(c.now);
    r.apply([pool("ns/a", 3)]);
    const confirmed = c.ms;
    c.ms += 500;
    r.apply([pool("ns/a", 2)]);
    assert.equal(r.get("ns/a")?.confirmedAtMs, confirmed);
  });

  test("entries without a pool id or with an invalid version are ignored", () => {
    const r = new Replica(clock().now);
    assert.equal(r.apply([pool("", 1), pool("ns/a", -1), pool("ns/b", 1.5), pool("ns/c", 0)]), 1);
    assert.deepEqual(
      [...r.entries()].map((e) => e.counters.pool),
      ["ns/c"],
    );
  });

  test("relayed entries keep the relayer's confirmation time, capped at now", () => {
    const c = clock(10_000_000);
    const r = new Replica(c.now);
    r.apply([pool("ns/old", 1, { confirmedAt: ts(c.ms - 60_000) })], { relayed: true });
    r.apply([pool("ns/future", 1, { confirmedAt: ts(c.ms + 60_000) })], { relayed: true });
    r.apply([pool("ns/undated", 1)], { relayed: true });
    assert.equal(r.get("ns/old")?.confirmedAtMs, c.ms - 60_000);
    assert.equal(r.get("ns/future")?.confirmedAtMs, c.ms);
    assert.equal(r.get("ns/undated")?.confirmedAtMs, c.ms);
    // A relayed copy of the same version never makes an entry older.
    r.apply([pool("ns/future", 1, { confirmedAt: ts(c.ms - 90_000) })], { relayed: true });
    assert.equal(r.get("ns/future")?.confirmedAtMs, c.ms);
  });

  test("entries() lists pools in id order, optionally after a given id", () => {
    const r = new Replica(clock().now);
    r.apply(["b/2", "a/1", "c/3", "a/0"].map((id) => pool(id, 1)));
    r.apply([pool("b/1", 1)]);
    const list = (after?: string) => [...r.entries(after)].map((e) => e.counters.pool);
    assert.deepEqual(list(), ["a/0", "a/1", "b/1", "b/2", "c/3"]);
    assert.deepEqual(list("b/1"), ["b/2", "c/3"]);
    assert.deepEqual(list("b/15"), ["b/2", "c/3"]);
    assert.deepEqual(list("z/z"), []);
  });

  test("applying any permutation of the same entries yields the same replica", () => {
    const entry = fc.record({
      pool: fc.constantFrom("ns/a", "ns/b", "ns/c", "other/d"),
      version: fc.integer({ min: 0, max: 6 }),
      reserved: fc.integer({ min: 0, max: 20 }),
    });
    // Distinct (pool, version) pairs: one owner never emits two values for one version.
    const entries = fc.uniqueArray(entry, {
      selector: (e) => `${e.pool}@${e.version}`,
      maxLength: 24,
    });
    fc.assert(
      fc.property(
        entries,
        fc.func(fc.integer()),
        fc.integer({ min: 1, max: 5 }),
        (list, rank, batchSize) => {
          const build = (order: typeof list) => {
            const r = new Replica(() => 0);
            for (let i = 0; i < order.length; i += batchSize) {
              r.apply(order.slice(i, i + batchSize).map((e) => pool(e.pool, e.version, e)));
            }
            return [...r.entries()].map((e) => e.counters);
          };
          const shuffled = list
            .map((e, i) => ({ e, k: rank(i) }))
            .sort((x, y) => x.k - y.k)
            .map((x) => x.e);
          assert.deepEqual(build(shuffled), build(list));
          assert.deepEqual(build([...list].reverse()), build(list));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("Replica.query", () => {
  test("filters by label selector", () => {
    const r = new Replica(clock().now);
    r.apply([
      pool("ns/a", 1, { labels: { zone: "north", kind: "van" } }),
      pool("ns/b", 1, { labels: { zone: "south", kind: "van" } }),
      pool("ns/c", 1, { labels: { zone: "north", kind: "bike", blocked: "yes" } }),
      pool("ns/d", 1),
    ]);
    assert.deepEqual(ids(r, { selector: parseLabelSelector("zone=north") }), ["ns/a", "ns/c"]);
    assert.deepEqual(ids(r, { selector: parseLabelSelector("kind in (van),!blocked") }), [
      "ns/a",
      "ns/b",
    ]);
    assert.deepEqual(ids(r, { selector: parseLabelSelector("") }), [
      "ns/a",
      "ns/b",
      "ns/c",
      "ns/d",
    ]);
  });

  test("filters by window overlap with half-open intervals; windowless pools match no window filter", () => {
    const r = new Replica(clock(0).now);
    r.apply([
      pool("ns/morning", 1, { window: { startMs: 8_000, endMs: 12_000 } }),
      pool("ns/afternoon", 1, { window: { startMs: 12_000, endMs: 17_000 } }),
      pool("ns/anytime", 1),
    ]);
    assert.deepEqual(ids(r, { window: { startMs: 11_999, endMs: 12_000 } }), ["ns/morning"]);
    assert.deepEqual(ids(r, { window: { startMs: 12_000, endMs: 12_001 } }), ["ns/afternoon"]);
    assert.deepEqual(ids(r, { window: { startMs: 17_000, endMs: 20_000 } }), []);
    assert.deepEqual(ids(r, { window: { startMs: 0, endMs: 8_000 } }), []);
    assert.deepEqual(ids(r, { window: { startMs: 0, endMs: 99_000 } }), [
      "ns/afternoon",
      "ns/morning",
    ]);
    // Without a window filter, pools with and without windows are listed.
    assert.deepEqual(ids(r), ["ns/afternoon", "ns/anytime", "ns/morning"]);
  });

  test("a pool whose window has ended has no available units", () => {
    const c = clock(10_000);
    const r = new Replica(c.now);
    r.apply([
      pool("ns/morning", 1, { window: { startMs: 8_000, endMs: 12_000 } }),
      pool("ns/anytime", 1),
    ]);
    const open = { includeClosed: false, minUnits: 1 };
    assert.deepEqual(
      r.query({ ...all, ...open }).pools.map((p) => [p.counters.pool, p.available]),
      [
        ["ns/anytime", 10],
        ["ns/morning", 10],
      ],
    );
    c.ms = 12_000;
    assert.deepEqual(ids(r, open), ["ns/anytime"]);
    assert.deepEqual(
      r.query({ ...all, ...open, minUnits: 0 }).pools.map((p) => p.counters.pool),
      ["ns/anytime"],
    );
  });

  test("filters by available units, treating 0 as 1 and over-committed pools as empty", () => {
    const r = new Replica(clock().now);
    r.apply([
      pool("ns/full", 1, { capacity: 5, reserved: 5 }),
      pool("ns/over", 1, { capacity: 5, reserved: 8 }),
      pool("ns/one", 1, { capacity: 5, reserved: 4 }),
      pool("ns/three", 1, { capacity: 5, reserved: 2 }),
    ]);
    const q = { includeClosed: false };
    assert.deepEqual(ids(r, { ...q, minUnits: 0 }), ["ns/one", "ns/three"]);
    assert.deepEqual(ids(r, { ...q, minUnits: 1 }), ["ns/one", "ns/three"]);
    assert.deepEqual(ids(r, { ...q, minUnits: 3 }), ["ns/three"]);
    assert.deepEqual(ids(r, { ...q, minUnits: 4 }), []);
    const page = r.query({ ...all, ...q });
    assert.deepEqual(
      page.pools.map((p) => p.available),
      [1, 3],
    );
  });

  test("excludes closed pools unless asked, and reports them with nothing available", () => {
    const r = new Replica(clock().now);
    r.apply([pool("ns/closed", 1, { closed: true }), pool("ns/open", 1)]);
    assert.deepEqual(ids(r, { includeClosed: false }), ["ns/open"]);
    assert.deepEqual(ids(r, { includeClosed: true, minUnits: 5 }), ["ns/closed", "ns/open"]);
    const closed = r.query({ ...all, includeClosed: true }).pools[0];
    assert.equal(closed?.counters.pool, "ns/closed");
    assert.equal(closed?.available, 0);
  });

  test("never lists a retired pool; only a higher version (re-created) brings it back", () => {
    const r = new Replica(clock().now);
    r.apply([pool("ns/a", 3, { closed: true }), pool("ns/b", 1)]);
    const tombstone = pool("ns/a", 5, { deleted: true, capacity: 0 });
    assert.equal(r.apply([tombstone]), 1);
    assert.deepEqual(ids(r, { includeClosed: true }), ["ns/b"]);
    assert.deepEqual(ids(r, { includeClosed: false }), ["ns/b"]);
    // A late message from before the retirement changes nothing, in any order.
    assert.equal(r.apply([pool("ns/a", 4), pool("ns/a", 5)]), 0);
    assert.deepEqual(ids(r), ["ns/b"]);
    assert.equal(r.get("ns/a")?.counters.deleted, true);
    // The tombstone is kept (and relayed by Pull); the re-created pool replaces it.
    assert.deepEqual(
      [...r.entries()].map((e) => e.counters.pool),
      ["ns/a", "ns/b"],
    );
    assert.equal(r.apply([pool("ns/a", 6)]), 1);
    assert.deepEqual(ids(r), ["ns/a", "ns/b"]);
  });

  test("reports each pool's staleness and the page's largest from the injected clock", () => {
    const c = clock();
    const r = new Replica(c.now);
    r.apply([pool("ns/a", 1), pool("ns/b", 1)]);
    c.ms += 3_000;
    r.apply([pool("ns/b", 2)]);
    c.ms += 250;
    const page = r.query(all);
    assert.deepEqual(
      page.pools.map((p) => [p.counters.pool, p.staleMs]),
      [
        ["ns/a", 3_250],
        ["ns/b", 250],
      ],
    );
    assert.equal(page.maxStaleMs, 3_250);
    assert.equal(new Replica(c.now).query(all).maxStaleMs, 0, "an empty page is 0 ms stale");
  });

  test("pages through every match in order with no duplicates or gaps", () => {
    const r = new Replica(clock().now);
    const expected: string[] = [];
    for (let i = 0; i < 257; i++) {
      const id = `ns-${i % 7}/pool-${String(i).padStart(4, "0")}`;
      const even = i % 2 === 0;
      r.apply([pool(id, 1, { labels: { parity: even ? "even" : "odd" } })]);
      if (even) expected.push(id);
    }
    expected.sort();
    for (const pageSize of [1, 2, 10, 64, 129, 1000]) {
      const seen: string[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const page = r.query({
          ...all,
          pageSize,
          pageToken,
          selector: parseLabelSelector("parity=even"),
        });
        assert.ok(page.pools.length <= pageSize);
        if (page.nextPageToken !== "") assert.equal(page.pools.length, pageSize);
        seen.push(...page.pools.map((p) => p.counters.pool));
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken !== "");
      assert.deepEqual(seen, expected, `page size ${pageSize}`);
      assert.equal(pages, Math.max(1, Math.ceil(expected.length / pageSize)));
    }
  });

  test("a pool added between pages appears on a later page when its id sorts after the token", () => {
    const r = new Replica(clock().now);
    r.apply(["ns/a", "ns/c", "ns/e"].map((id) => pool(id, 1)));
    const first = r.query({ ...all, pageSize: 2 });
    assert.deepEqual(
      first.pools.map((p) => p.counters.pool),
      ["ns/a", "ns/c"],
    );
    r.apply([pool("ns/b", 1), pool("ns/d", 1)]);
    const second = r.query({ ...all, pageSize: 2, pageToken: first.nextPageToken });
    assert.deepEqual(
      second.pools.map((p) => p.counters.pool),
      ["ns/d", "ns/e"],
    );
    assert.equal(second.nextPageToken, "");
  });

  test("uses 100 pools per page when the page size is 0", () => {
    const r = new Replica(clock().now);
    r.apply(Array.from({ length: 150 }, (_, i) => pool(`ns/p${1000 + i}`, 1)));
    const page = r.query(all);
    assert.equal(page.pools.length, 100);
    assert.notEqual(page.nextPageToken, "");
  });

  test("rejects a page size out of range with a precise error", () => {
    const r = new Replica(clock().now);
    for (const pageSize of [-1, 1.5, MAX_PAGE_SIZE + 1, Number.NaN]) {
      assert.throws(
        () => r.query({ ...all, pageSize }),
        (e: unknown) =>
          e instanceof InvalidPageSizeError &&
          e.message ===
            `page size must be an integer from 1 to 1000 (0 means 100); got ${pageSize}`,
      );
    }
  });

  test("rejects malformed page tokens with a precise error", () => {
    const r = new Replica(clock().now);
    r.apply([pool("ns/a", 1)]);
    const cases: Array<[string, string]> = [
      ["not+base64/", "it contains characters outside the base64url alphabet"],
      ["bnMvYQ==", "it contains characters outside the base64url alphabet"],
      ["bnMvYR", "it is not canonical base64url"],
      ["_w", "it does not decode to UTF-8 text"],
      [encodePageToken("no-slash"), "it does not decode to a pool id"],
      ["A".repeat(500), "it is 500 characters long, longer than any token"],
    ];
    for (const [token, reason] of cases) {
      assert.throws(
        () => r.query({ ...all, pageToken: token }),
        (e: unknown) => {
          assert.ok(e instanceof InvalidPageTokenError);
          assert.equal(e.reason, reason);
          assert.equal(e.token, token);
          const shown = token.length > 64 ? `${token.slice(0, 64)}…` : token;
          assert.equal(
            e.message,
            `invalid page token "${shown}": ${reason}; pass the next_page_token of a previous response unchanged`,
          );
          return true;
        },
        token,
      );
    }
  });

  test("page tokens round-trip any pool id", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", minLength: 1, maxLength: 100 }), (name) => {
        const id = `ns/${name}`;
        assert.equal(decodePageToken(encodePageToken(id)), id);
      }),
    );
  });
});

describe("Replica windows", () => {
  const windowOf = (r: Replica, id: string) => r.get(id)?.counters.window;

  test("entries with equal windows share one; windows a nanosecond apart stay apart", () => {
    const c = clock(0);
    const r = new Replica(c.now);
    const slot = { startMs: 8_000, endMs: 12_000 };
    const a = pool("ns/a", 1, { window: slot });
    const b = pool("ns/b", 1, { window: slot });
    const nano = pool("ns/nano", 1, { window: slot });
    nano.window = { start: ts(8_000), end: { seconds: 12, nanos: 1 } };
    const late = pool("ns/late", 1, { window: { startMs: 8_000, endMs: 12_001 } });
    const bWindow = b.window;
    r.apply([a, b, nano, late]);
    assert.ok(windowOf(r, "ns/a") === windowOf(r, "ns/b"), "equal windows are one object");
    assert.ok(b.window === bWindow, "the caller's counters are left as they were");
    assert.deepEqual(windowOf(r, "ns/b"), { start: ts(8_000), end: ts(12_000) });
    assert.deepEqual(windowOf(r, "ns/nano"), { start: ts(8_000), end: { seconds: 12, nanos: 1 } });
    assert.deepEqual(windowOf(r, "ns/late"), { start: ts(8_000), end: ts(12_001) });
    assert.equal(r.distinctWindows, 3);
    // A decoded entry is the replica's: kept itself, the shared window written in.
    const decoded = pool("ns/decoded", 1, { window: slot });
    r.apply([decoded], { decoded: true });
    assert.ok(r.get("ns/decoded")?.counters === decoded);
    assert.ok(decoded.window === windowOf(r, "ns/a"));
    assert.equal(r.distinctWindows, 3);

    // Each pool answers by its own window: at 12 s only the one ending 1 ms later is open.
    const open = { includeClosed: false, minUnits: 1 };
    c.ms = 11_999;
    assert.deepEqual(ids(r, open), ["ns/a", "ns/b", "ns/decoded", "ns/late", "ns/nano"]);
    assert.deepEqual(ids(r, { window: { startMs: 12_000, endMs: 13_000 } }), ["ns/late"]);
    assert.deepEqual(ids(r, { window: { startMs: 0, endMs: 8_001 } }), [
      "ns/a",
      "ns/b",
      "ns/decoded",
      "ns/late",
      "ns/nano",
    ]);
    c.ms = 12_000;
    assert.deepEqual(ids(r, open), ["ns/late"]);
  });

  test("a window no entry holds any more is let go; one still held stays shared", () => {
    const r = new Replica(clock(0).now);
    const morning = { startMs: 8_000, endMs: 12_000 };
    const evening = { startMs: 18_000, endMs: 22_000 };
    r.apply([pool("ns/a", 1, { window: morning }), pool("ns/b", 1, { window: morning })]);
    assert.equal(r.distinctWindows, 1);
    r.apply([pool("ns/a", 2, { window: evening })]);
    assert.equal(r.distinctWindows, 2);
    assert.deepEqual(windowOf(r, "ns/a"), { start: ts(18_000), end: ts(22_000) });
    assert.deepEqual(windowOf(r, "ns/b"), { start: ts(8_000), end: ts(12_000) });
    r.apply([pool("ns/b", 2)]);
    assert.equal(r.distinctWindows, 1);
    assert.equal(windowOf(r, "ns/b"), undefined);
    assert.deepEqual(ids(r, { window: { startMs: 0, endMs: 13_000 } }), []);
    // A lower or equal version changes nothing, and holds nothing.
    r.apply([pool("ns/b", 2, { window: morning }), pool("ns/a", 1, { window: morning })]);
    assert.equal(r.distinctWindows, 1);
    r.apply([pool("ns/c", 1, { window: evening })]);
    assert.ok(windowOf(r, "ns/c") === windowOf(r, "ns/a"));
    assert.equal(r.distinctWindows, 1);

    // A newer version's window a nanosecond off, or with an open start, is its own.
    const c3 = pool("ns/c", 3, { window: evening });
    c3.window = { start: ts(18_000), end: { seconds: 22, nanos: 1 } };
    r.apply([c3]);
    assert.deepEqual(windowOf(r, "ns/c"), { start: ts(18_000), end: { seconds: 22, nanos: 1 } });
    const c4 = pool("ns/c", 4, { window: evening });
    c4.window = { start: undefined, end: { seconds: 22, nanos: 1 } };
    r.apply([c4], { decoded: true });
    assert.deepEqual(windowOf(r, "ns/c"), { start: undefined, end: { seconds: 22, nanos: 1 } });
    assert.equal(r.distinctWindows, 2);
    assert.deepEqual(ids(r, { window: { startMs: 0, endMs: 1 } }), ["ns/c"]);
    r.apply([pool("ns/c", 5, { window: evening })], { decoded: true });
    assert.ok(windowOf(r, "ns/c") === windowOf(r, "ns/a"));
    assert.equal(r.distinctWindows, 1);
  });
});

describe("Replica.maxStaleMs", () => {
  test("is the age of the least recently confirmed pool, retired pools aside", () => {
    const c = clock();
    const r = new Replica(c.now);
    assert.equal(r.maxStaleMs(), 0, "an empty replica is not stale");
    r.apply([pool("ns/a", 1), pool("ns/gone", 1)]);
    c.ms += 1_000;
    r.apply([pool("ns/b", 1), pool("ns/gone", 2, { deleted: true })]);
    c.ms += 500;
    assert.equal(r.maxStaleMs(), 1_500, "ns/a was confirmed 1.5 s ago");
    r.apply([pool("ns/a", 1)]);
    assert.equal(r.maxStaleMs(), 500, "confirming ns/a again leaves ns/b the oldest");
    c.ms += 10_000;
    r.apply([pool("ns/a", 1), pool("ns/b", 1)]);
    assert.equal(r.maxStaleMs(), 0, "the tombstone's age does not count");
  });
});

describe("Replica label index", () => {
  const keys = ["zone", "kind", "tier"] as const;
  const values = ["a", "b", "c", ""] as const;
  const labels = fc.dictionary(fc.constantFrom(...keys), fc.constantFrom(...values), {
    maxKeys: 3,
  });
  const entry = fc.record({
    pool: fc.constantFrom(...Array.from({ length: 30 }, (_, i) => `ns/p${i}`), "x/z", "ns/p1a"),
    version: fc.integer({ min: 0, max: 5 }),
    reserved: fc.integer({ min: 0, max: 12 }),
    closed: fc.boolean(),
    deleted: fc.boolean(),
    labels,
  });
  const requirement = fc.oneof(
    fc.record({
      op: fc.constantFrom("=" as const, "!=" as const),
      key: fc.constantFrom(...keys),
      value: fc.constantFrom(...values),
    }),
    fc.record({
      op: fc.constantFrom("in" as const, "notin" as const),
      key: fc.constantFrom(...keys),
      values: fc.uniqueArray(fc.constantFrom(...values), { minLength: 1, maxLength: 3 }),
    }),
    fc.record({
      op: fc.constantFrom("exists" as const, "!exists" as const),
      key: fc.constantFrom(...keys),
    }),
  );

  test("answers every query page by page exactly as a full scan does, across label changes", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(entry, { maxLength: 25 }), { minLength: 1, maxLength: 4 }),
        fc.array(requirement, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 0, max: 3 }),
        fc.boolean(),
        (batches, requirements, pageSize, minUnits, includeClosed) => {
          const c = clock();
          const indexed = new Replica(c.now);
          const scanned = new Replica(c.now, { labelIndex: false });
          const selector = { requirements };
          for (const batch of batches) {
            // The indexed replica may write shared values into its (own) copies' labels.
            indexed.apply(
              batch.map((e) => pool(e.pool, e.version, { ...e, labels: { ...e.labels } })),
              { decoded: true },
            );
            scanned.apply(batch.map((e) => pool(e.pool, e.version, e)));
            for (const e of scanned.entries()) {
              assert.deepEqual(indexed.get(e.counters.pool)?.counters.labels, e.counters.labels);
            }
            // Query between batches too: the index's sorted postings are cached.
            let token = "";
            let pages = 0;
            do {
              const q = { selector, minUnits, includeClosed, pageSize, pageToken: token };
              const a = indexed.query(q);
              const b = scanned.query(q);
              assert.deepEqual(
                a.pools.map((p) => [p.counters.pool, p.counters.version, p.available]),
                b.pools.map((p) => [p.counters.pool, p.counters.version, p.available]),
              );
              assert.equal(a.nextPageToken, b.nextPageToken);
              token = a.nextPageToken;
            } while (token !== "" && ++pages < 100);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test("entries not marked decoded are never written; decoded ones keep their own values", () => {
    const r = new Replica(clock().now);
    let writes = 0;
    // fromPartial copies labels: the watched object goes in afterwards.
    const watched = (id: string, version: number, labels: Record<string, string>) => {
      const c = pool(id, version);
      c.labels = new Proxy(labels, {
        set(target, key, value) {
          writes++;
          return Reflect.set(target, key, value);
        },
      });
      return c;
    };
    r.apply([pool("ns/a", 1, { labels: { zone: "north", slot: "north-1" } })]);
    r.apply([watched("ns/b", 1, { zone: "north", slot: "north-1" })]);
    r.apply([watched("ns/b", 2, { zone: "north", slot: "north-2" })]);
    assert.equal(writes, 0);
    r.apply(
      [
        watched("ns/c", 1, { zone: "north", slot: "north-1" }),
        watched("ns/d", 1, { zone: "south", slot: "north" }),
      ],
      { decoded: true },
    );
    assert.equal(writes, 2, "the values other entries hold under the same key are shared");
    assert.deepEqual(r.get("ns/c")?.counters.labels, { zone: "north", slot: "north-1" });
    assert.deepEqual(r.get("ns/d")?.counters.labels, { zone: "south", slot: "north" });
    assert.deepEqual(ids(r, { selector: parseLabelSelector("zone=north") }), [
      "ns/a",
      "ns/b",
      "ns/c",
    ]);
    assert.deepEqual(ids(r, { selector: parseLabelSelector("slot=north") }), ["ns/d"]);

    // A decoded newer version with equal labels keeps the object it had; other labels replace it.
    const kept = r.get("ns/c")?.counters.labels;
    r.apply([pool("ns/c", 2, { labels: { slot: "north-1", zone: "north" } })], { decoded: true });
    assert.ok(r.get("ns/c")?.counters.labels === kept);
    r.apply([pool("ns/c", 3, { labels: { slot: "north-1", zone: "east" } })], { decoded: true });
    assert.deepEqual(r.get("ns/c")?.counters.labels, { slot: "north-1", zone: "east" });
    assert.deepEqual(ids(r, { selector: parseLabelSelector("zone=east") }), ["ns/c"]);
  });

  test("a selector naming one pool's label finds it among many without a scan", () => {
    const r = new Replica(clock().now);
    r.apply(
      Array.from({ length: 5000 }, (_, i) => pool(`ns/p${i}`, 1, { labels: { id: `p${i}` } })),
    );
    const page = r.query({ ...all, selector: parseLabelSelector("id=p4321") });
    assert.deepEqual(
      page.pools.map((p) => p.counters.pool),
      ["ns/p4321"],
    );
    // Relabelled: found under the new value only.
    r.apply([pool("ns/p4321", 2, { labels: { id: "moved" } })]);
    assert.deepEqual(ids(r, { selector: parseLabelSelector("id=p4321") }), []);
    assert.deepEqual(ids(r, { selector: parseLabelSelector("id in (moved,p7)") }), [
      "ns/p4321",
      "ns/p7",
    ]);
  });
});
