import assert from "node:assert/strict";
import { test } from "node:test";
import { ERROR_REASONS, isErrorReason } from "./error-model.js";

test("the error reasons are exactly the ones in the build plan", () => {
  assert.deepEqual([...ERROR_REASONS].sort(), [
    "CLUSTER_MISMATCH",
    "INSUFFICIENT_CAPACITY",
    "INTERNAL_ERROR",
    "INVALID_FIELD",
    "JOURNAL_UNAVAILABLE",
    "NOT_OWNER",
    "NO_OWNER",
    "OWNER_UNAVAILABLE",
    "POOL_CLOSED",
    "POOL_NOT_FOUND",
    "REQUEST_ID_REUSED",
    "RESERVATION_NOT_FOUND",
    "SHARD_RECOVERING",
    "WINDOW_ENDED",
    "WRITES_FENCED",
  ]);
  assert.ok(isErrorReason("NOT_OWNER"));
  assert.ok(!isErrorReason("not_owner"));
});
