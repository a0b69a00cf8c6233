import assert from "node:assert/strict";
import { test } from "node:test";
import { v1 } from "@berth/proto";
import {
  availabilityFooter,
  availabilityTable,
  failureText,
  poolTable,
  windowText,
} from "./format.js";

const ts = (iso: string) => ({ seconds: Date.parse(iso) / 1000, nanos: 0 });

test("the availability table aligns columns and marks closed pools", () => {
  const text = availabilityTable([
    v1.PoolAvailability.fromPartial({
      pool: "delivery/north-a",
      capacity: 40,
      reserved: 2,
      available: 38,
      labels: { zone: "north", day: "tue" },
      window: { start: ts("2026-12-01T07:00:00Z"), end: ts("2026-12-01T11:00:00Z") },
      staleness: { seconds: 0, nanos: 250_000_000 },
    }),
    v1.PoolAvailability.fromPartial({ pool: "shop/x", capacity: 5, closed: true }),
  ]);
  assert.equal(
    text,
    [
      "POOL              AVAILABLE  RESERVED  CAPACITY  WINDOW                   LABELS              AGE",
      "delivery/north-a  38         2         40        2026-12-01 07:00–11:00Z  day=tue,zone=north  0.25s",
      "shop/x (closed)   0          0         5         -                        -                   -",
    ].join("\n"),
  );
});

test("windows spanning days show both ends in full", () => {
  assert.equal(
    windowText({ start: ts("2026-12-01T22:00:00Z"), end: ts("2026-12-02T02:30:00Z") }),
    "2026-12-01T22:00:00Z – 2026-12-02T02:30:00Z",
  );
  assert.equal(windowText(undefined), "-");
});

test("the footer says how many pools, how stale, and how to get the next page", () => {
  assert.equal(availabilityFooter(0, undefined, ""), "0 pools");
  assert.equal(
    availabilityFooter(1, { seconds: 1, nanos: 500_000_000 }, "abc"),
    "1 pool (data at most 1.5s old); more: --page-token 'abc' or --all-pages",
  );
});

test("a pool shows its counters, shard, owner and epoch", () => {
  const text = poolTable(
    v1.Pool.fromPartial({
      pool: "a/b",
      capacity: 3,
      reserved: 4,
      overCommitted: true,
      shard: 7,
      owner: "worker-1",
      epoch: 2,
    }),
  );
  assert.match(text, /^pool {17}a\/b$/m);
  assert.match(text, /^reserved {13}4 \(over-committed\)$/m);
  assert.match(text, /^shard {16}7 \(owner worker-1, epoch 2\)$/m);
});

test("a failure prints the status name, message, reason and metadata", () => {
  assert.equal(
    failureText({
      status: "FAILED_PRECONDITION",
      code: 9,
      message: "pool a/b has 1 unit available, 2 requested",
      reason: "INSUFFICIENT_CAPACITY",
      metadata: { pool: "a/b", available: "1" },
    }),
    "error: FAILED_PRECONDITION: pool a/b has 1 unit available, 2 requested [reason INSUFFICIENT_CAPACITY; available=1; pool=a/b]",
  );
  assert.equal(
    failureText({
      status: "UNAVAILABLE",
      code: 14,
      message: "down",
      metadata: {},
      retryDelayMs: 500,
    }),
    "error: UNAVAILABLE: down [retry in 500ms]",
  );
});
