import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "@berth/common";
import { DEFAULT_ADDRESS, DEFAULT_TIMEOUT_MS, parseCliArgs, parseDuration, usage } from "./args.js";

const usageError = (message: string) => ({ name: "UsageError", message });

test("reserve takes a pool, units and an optional request id", () => {
  assert.deepEqual(parseCliArgs(["reserve", "delivery/north", "2"]), {
    command: "reserve",
    pool: "delivery/north",
    units: 2,
    requestId: undefined,
    address: DEFAULT_ADDRESS,
    json: false,
    timeoutMs: DEFAULT_TIMEOUT_MS,
  });
  assert.equal(
    (parseCliArgs(["reserve", "a/b", "1", "--request-id", "r-1"]) as { requestId: string })
      .requestId,
    "r-1",
  );
});

test("global options go anywhere and the environment supplies defaults", () => {
  assert.deepEqual(
    parseCliArgs(["--json", "pool", "a/b", "--timeout", "250ms"], {
      BERTH_ADDRESS: "127.0.0.1:6000",
    }),
    { command: "pool", pool: "a/b", address: "127.0.0.1:6000", json: true, timeoutMs: 250 },
  );
  assert.equal(
    (
      parseCliArgs(["release", "x", "--address", "h:1"], { BERTH_ADDRESS: "e:2" }) as {
        address: string;
      }
    ).address,
    "h:1",
  );
  assert.equal(
    (parseCliArgs(["pool", "a/b"], { BERTH_TIMEOUT: "2m" }) as { timeoutMs: number }).timeoutMs,
    120_000,
  );
});

test("availability parses selector, window, bounds and paging", () => {
  assert.deepEqual(
    parseCliArgs([
      "availability",
      "-l",
      "zone=north,kind in (van)",
      "--from",
      "2026-12-01T00:00:00Z",
      "--to",
      "2026-12-02T00:00:00+01:00",
      "--min-units",
      "3",
      "--page-size",
      "50",
      "--all-pages",
    ]),
    {
      command: "availability",
      selector: "zone=north,kind in (van)",
      window: {
        start: { seconds: Date.UTC(2026, 11, 1) / 1000, nanos: 0 },
        end: { seconds: Date.UTC(2026, 11, 1, 23) / 1000, nanos: 0 },
      },
      minUnits: 3,
      pageSize: 50,
      pageToken: "",
      allPages: true,
      includeClosed: false,
      address: DEFAULT_ADDRESS,
      json: false,
      timeoutMs: DEFAULT_TIMEOUT_MS,
    },
  );
});

test("help is available for the whole CLI and for each command", () => {
  assert.deepEqual(parseCliArgs(["--help"]), { command: "help" });
  assert.deepEqual(parseCliArgs(["help", "reserve"]), { command: "help", topic: "reserve" });
  assert.deepEqual(parseCliArgs(["reserve", "-h"]), { command: "help", topic: "reserve" });
  assert.match(usage("reserve"), /^Usage: berth reserve <pool> <units> \[--request-id ID\]/);
  assert.match(usage(), /Exit codes: 0 success, 1 the call failed [\s\S]* 2 usage error/);
});

test("malformed command lines are usage errors that say what is wrong", () => {
  assert.throws(
    () => parseCliArgs(["book", "a/b"]),
    usageError('unknown command "book" (commands: reserve, release, availability, pool, health)'),
  );
  assert.throws(
    () => parseCliArgs(["reserve", "a/b"]),
    usageError('"reserve" needs <pool> <units>'),
  );
  assert.throws(
    () => parseCliArgs(["reserve", "a/b", "1", "2"]),
    usageError('"reserve" takes <pool> <units>; unexpected "2"'),
  );
  assert.throws(
    () => parseCliArgs(["reserve", "a/b", "0"]),
    usageError('<units> must be an integer from 1 to 1000000, got "0"'),
  );
  assert.throws(
    () => parseCliArgs(["reserve", "a/b", "1.5"]),
    usageError('<units> must be an integer from 1 to 1000000, got "1.5"'),
  );
  assert.throws(
    () => parseCliArgs(["pool", "a/b", "--selector", "x"]),
    usageError('--selector does not apply to "pool"'),
  );
  assert.throws(
    () => parseCliArgs(["pool", "a/b", "--timeout", "soon"]),
    usageError('--timeout must be a positive duration such as 500ms, 5s or 1m, got "soon"'),
  );
  assert.throws(
    () => parseCliArgs(["availability", "--from", "2026-12-01T00:00:00Z"]),
    usageError("--from and --to go together"),
  );
  assert.throws(
    () => parseCliArgs(["availability", "--from", "yesterday", "--to", "2026-12-01T00:00:00Z"]),
    usageError('--from must be an RFC 3339 timestamp, got "yesterday"'),
  );
  assert.throws(
    () => parseCliArgs(["availability", "--all-pages", "--page-token", "t"]),
    usageError("--all-pages and --page-token exclude each other"),
  );
  assert.throws(
    () => parseCliArgs([]),
    usageError("missing command (reserve, release, availability, pool, health)"),
  );
});

test("a bad option is named with what was meant, not node's parser message", () => {
  assert.throws(
    () => parseCliArgs(["reserve", "a/b", "-3"]),
    usageError('<units> must be an integer from 1 to 1000000, got "-3"'),
  );
  assert.throws(
    () => parseCliArgs(["pool", "a/b", "--bogus"]),
    usageError(
      'unknown option "--bogus" for "pool"; its options: --address, --json, --timeout, -h/--help',
    ),
  );
  assert.throws(() => parseCliArgs(["reserve", "a/b", "2", "--request_id", "x"]), {
    name: "UsageError",
    message:
      /^unknown option "--request_id" for "reserve" \(did you mean --request-id\?\); its options: --request-id, /,
    topic: "reserve",
  });
  assert.throws(() => parseCliArgs(["--timeout", "1s", "reserve", "a/b", "2", "--selectr", "x"]), {
    message:
      /^unknown option "--selectr" for "reserve" \(--selector is not an option of "reserve"\)/,
  });
  assert.throws(() => parseCliArgs(["--bogus"]), usageError('unknown option "--bogus"'));
  assert.throws(() => parseCliArgs(["availability", "-l"]), usageError("--selector needs a value"));
  assert.throws(
    () => parseCliArgs(["availability", "--min-units", "-3"]),
    usageError(
      '--min-units needs a value, and "-3" looks like an option (write --min-units=-3 if it is the value)',
    ),
  );
  assert.throws(
    () => parseCliArgs(["pool", "a/b", "--json=yes"]),
    usageError("--json takes no value"),
  );
});

test("durations accept milliseconds, seconds, minutes and bare seconds", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("5s"), 5000);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("3"), 3000);
  assert.equal(parseDuration("0s"), undefined);
  assert.equal(parseDuration("-1s"), undefined);
  assert.equal(parseDuration("5h"), undefined);
});

test("health takes an optional --service and no positional arguments", () => {
  assert.deepEqual(parseCliArgs(["health", "--address", "gw:50051"]), {
    command: "health",
    address: "gw:50051",
    json: false,
    timeoutMs: 5000,
    service: "",
  });
  assert.deepEqual(parseCliArgs(["health", "--service", "berth.v1.CapacityService", "--json"]), {
    command: "health",
    address: "localhost:50051",
    json: true,
    timeoutMs: 5000,
    service: "berth.v1.CapacityService",
  });
  assert.throws(
    () => parseCliArgs(["health", "extra"]),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message === '"health" takes no positional arguments; unexpected "extra"',
  );
});
