import assert from "node:assert/strict";
import { test } from "node:test";
import { Metadata, status } from "@grpc/grpc-js";
import { outcomeOf } from "./grpc-server-metrics.js";
import { richStatus } from "./rich-status.js";

test("an answer's outcome is ok, its Berth reason, or its gRPC code, in lower case", () => {
  assert.equal(outcomeOf(null), "ok");
  assert.equal(
    outcomeOf(richStatus(status.FAILED_PRECONDITION, "full", { reason: "INSUFFICIENT_CAPACITY" })),
    "insufficient_capacity",
  );
  assert.equal(
    outcomeOf(
      richStatus(status.UNAVAILABLE, "down", { reason: "JOURNAL_UNAVAILABLE", retryDelayMs: 100 }),
    ),
    "journal_unavailable",
  );
  const plain = Object.assign(new Error("late"), {
    code: status.DEADLINE_EXCEEDED,
    details: "late",
    metadata: new Metadata(),
  });
  assert.equal(outcomeOf(plain), "deadline_exceeded");
  assert.equal(outcomeOf(new Error("no code")), "unknown");
});
