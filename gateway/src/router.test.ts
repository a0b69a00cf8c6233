// The Router's pure decisions about a failed attempt: how it is classified, and what the
// call reports and waits for next. The calls themselves are in router.int.test.ts (faults
// scripted on fake workers) and e2e/src/gateway/router-real-worker.int.test.ts.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ParsedRichStatus } from "@berth/common";
import { ERROR_DOMAIN } from "@berth/proto";
import { status } from "@grpc/grpc-js";
import { classifyFailure, type Route, retryAfter } from "./router.js";

const route: Route = {
  revision: 7,
  shard: 3,
  epoch: 4,
  owner: "worker-1",
  address: "10.0.0.2:7000",
};
const berth = (code: number, reason: string, extra: Partial<ParsedRichStatus> = {}) =>
  ({
    code,
    message: `${reason} happened`,
    reason,
    domain: ERROR_DOMAIN,
    metadata: {},
    ...extra,
  }) satisfies ParsedRichStatus;
const bare = (code: number, message: string): ParsedRichStatus => ({ code, message, metadata: {} });

test("each failure is classified as the router's contract says", () => {
  const cases: [string, ParsedRichStatus, { aborted: boolean } | undefined, unknown][] = [
    [
      "NOT_OWNER",
      berth(status.FAILED_PRECONDITION, "NOT_OWNER"),
      undefined,
      { kind: "retry", reason: "not_owner" },
    ],
    [
      "WRITES_FENCED",
      berth(status.FAILED_PRECONDITION, "WRITES_FENCED"),
      undefined,
      { kind: "retry", reason: "not_owner" },
    ],
    [
      "the owner's UNAVAILABLE",
      berth(status.UNAVAILABLE, "SHARD_RECOVERING"),
      undefined,
      { kind: "retry", reason: "unavailable" },
    ],
    [
      "a transport UNAVAILABLE",
      bare(status.UNAVAILABLE, "connection refused"),
      undefined,
      { kind: "retry", reason: "unreachable" },
    ],
    [
      "a CANCELLED nobody asked for",
      bare(status.CANCELLED, "stream reset"),
      undefined,
      { kind: "retry", reason: "unreachable" },
    ],
    [
      "the caller's own cancel",
      bare(status.CANCELLED, "cancelled"),
      { aborted: true },
      { kind: "answer" },
    ],
    [
      "INTERNAL without a reason",
      bare(status.INTERNAL, "process died"),
      undefined,
      { kind: "retry", reason: "unreachable" },
    ],
    ["INTERNAL with a reason", berth(status.INTERNAL, "INTERNAL"), undefined, { kind: "answer" }],
    [
      "DEADLINE_EXCEEDED",
      bare(status.DEADLINE_EXCEEDED, "deadline"),
      undefined,
      { kind: "out_of_time" },
    ],
    [
      "a domain answer",
      berth(status.FAILED_PRECONDITION, "INSUFFICIENT_CAPACITY"),
      undefined,
      { kind: "answer" },
    ],
    ["NOT_FOUND", berth(status.NOT_FOUND, "POOL_NOT_FOUND"), undefined, { kind: "answer" }],
  ];
  for (const [what, s, signal, expected] of cases) {
    assert.deepEqual(classifyFailure(s, signal), expected, what);
  }
});

test("NOT_OWNER naming a newer epoch waits for a map with it; an older or missing one does not", () => {
  const newer = retryAfter(
    "not_owner",
    berth(status.FAILED_PRECONDITION, "NOT_OWNER", { metadata: { epoch: "6" } }),
    route,
  );
  assert.equal(newer.neededEpoch, 6);
  assert.equal(newer.unreachable, undefined, "the owner answered");
  assert.equal(newer.failure.reason, "OWNER_UNAVAILABLE");
  assert.match(
    newer.failure.message,
    /^worker-1 \(10\.0\.0\.2:7000\) does not own shard 3 at epoch 4: /,
  );
  for (const epoch of ["4", "2", "", "x"]) {
    const plan = retryAfter(
      "not_owner",
      berth(status.FAILED_PRECONDITION, "NOT_OWNER", { metadata: { epoch } }),
      route,
    );
    assert.equal(plan.neededEpoch, undefined, `epoch ${JSON.stringify(epoch)}`);
  }
});

test("the owner's UNAVAILABLE keeps its reason and RetryInfo; an unknown reason becomes OWNER_UNAVAILABLE", () => {
  const journal = retryAfter(
    "unavailable",
    berth(status.UNAVAILABLE, "JOURNAL_UNAVAILABLE", { retryDelayMs: 800 }),
    route,
  );
  assert.deepEqual(journal, {
    failure: {
      reason: "JOURNAL_UNAVAILABLE",
      message: "owner worker-1 (10.0.0.2:7000) of shard 3 answered: JOURNAL_UNAVAILABLE happened",
      retryDelayMs: 800,
      fromOwner: true,
    },
    minDelayMs: 800,
  });
  const odd = retryAfter("unavailable", berth(status.UNAVAILABLE, "SOMETHING_NEW"), route);
  assert.equal(odd.failure.reason, "OWNER_UNAVAILABLE");
  assert.equal(odd.minDelayMs, 0);
});

test("an unreachable owner is reported as such, with the transport's status", () => {
  const plan = retryAfter("unreachable", bare(status.UNAVAILABLE, "connect ECONNREFUSED"), route);
  assert.equal(plan.unreachable, "UNAVAILABLE: connect ECONNREFUSED");
  assert.deepEqual(plan.failure, {
    reason: "OWNER_UNAVAILABLE",
    message:
      "owner worker-1 (10.0.0.2:7000) of shard 3 is unreachable: UNAVAILABLE: connect ECONNREFUSED",
    fromOwner: false,
    unreachable: true,
  });
});
