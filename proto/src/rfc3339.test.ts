import assert from "node:assert/strict";
import { test } from "node:test";
import { compareTimestamps, parseRfc3339 } from "./rfc3339.js";

test("RFC 3339 parsing keeps nanoseconds and applies offsets", () => {
  assert.deepEqual(parseRfc3339("1970-01-01T00:00:01.000000001Z"), { seconds: 1, nanos: 1 });
  assert.deepEqual(parseRfc3339("1970-01-01T01:00:00+01:00"), { seconds: 0, nanos: 0 });
  assert.deepEqual(parseRfc3339("1970-01-01T00:00:00-00:30"), { seconds: 1800, nanos: 0 });
  assert.equal(parseRfc3339("1970-01-01 00:00:00Z"), undefined);
  assert.equal(parseRfc3339("2024-02-29T00:00:00Z")?.seconds, Date.UTC(2024, 1, 29) / 1000);
  assert.equal(parseRfc3339("2023-02-29T00:00:00Z"), undefined);
  assert.equal(parseRfc3339("2023-01-01T24:00:00Z"), undefined);
});

test("timestamps order by seconds, then nanos", () => {
  assert.ok(compareTimestamps({ seconds: 1, nanos: 0 }, { seconds: 0, nanos: 999_999_999 }) > 0);
  assert.ok(compareTimestamps({ seconds: 1, nanos: 1 }, { seconds: 1, nanos: 2 }) < 0);
  assert.equal(compareTimestamps({ seconds: 5, nanos: 7 }, { seconds: 5, nanos: 7 }), 0);
});
