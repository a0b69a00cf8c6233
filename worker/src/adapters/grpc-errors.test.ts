import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseRichStatus } from "@berth/common";
import { status } from "@grpc/grpc-js";
import { pino } from "pino";
import { InvalidCommandError } from "../domain/pool.js";
import { JournalUnavailableError } from "../journal/errors.js";
import { type Failure, toGrpcError } from "./grpc-errors.js";

const logger = pino({ level: "silent" });
const parsed = (f: Failure) => parseRichStatus(toGrpcError(f, logger));

describe("toGrpcError", () => {
  test("domain rejections map to NOT_FOUND, FAILED_PRECONDITION or INVALID_ARGUMENT with their reason", () => {
    const cases: [Failure, status, string][] = [
      [
        { kind: "rejected", rejection: { code: "POOL_NOT_FOUND", message: "m" }, version: 0 },
        status.NOT_FOUND,
        "POOL_NOT_FOUND",
      ],
      [
        {
          kind: "rejected",
          rejection: { code: "RESERVATION_NOT_FOUND", message: "m" },
          version: 1,
        },
        status.NOT_FOUND,
        "RESERVATION_NOT_FOUND",
      ],
      [
        { kind: "rejected", rejection: { code: "POOL_CLOSED", message: "m" }, version: 1 },
        status.FAILED_PRECONDITION,
        "POOL_CLOSED",
      ],
      [
        { kind: "rejected", rejection: { code: "REQUEST_ID_REUSED", message: "m" }, version: 1 },
        status.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
      ],
      [{ kind: "pool_not_found", pool: "a/b" }, status.NOT_FOUND, "POOL_NOT_FOUND"],
    ];
    for (const [failure, code, reason] of cases) {
      const s = parsed(failure);
      assert.equal(s.code, code, reason);
      assert.equal(s.reason, reason);
      assert.equal(s.domain, "berth.dev");
    }
    const full = parsed({
      kind: "rejected",
      rejection: {
        code: "INSUFFICIENT_CAPACITY",
        message: "pool a/b has 2 of 5 units available; 3 requested",
        available: 2,
      },
      version: 4,
    });
    assert.equal(full.code, status.FAILED_PRECONDITION);
    assert.equal(full.message, "pool a/b has 2 of 5 units available; 3 requested");
    assert.deepEqual(full.metadata, { available: "2" });
  });

  test("invalid input is INVALID_ARGUMENT naming the field, with a BadRequest violation", () => {
    const s = parsed({
      kind: "invalid_field",
      violation: { field: "request.units", description: "must be from 1 to 1000000, got 0" },
    });
    assert.equal(s.code, status.INVALID_ARGUMENT);
    assert.equal(s.reason, "INVALID_FIELD");
    assert.equal(s.message, "request.units: must be from 1 to 1000000, got 0");
    assert.deepEqual(s.metadata, { field: "request.units" });
    assert.deepEqual(s.fieldViolations, [
      { field: "request.units", description: "must be from 1 to 1000000, got 0" },
    ]);
    const d = parsed({
      kind: "invalid",
      error: new InvalidCommandError(
        "a/b",
        "reserve",
        "units",
        "must be a positive integer, got 0",
      ),
    });
    assert.equal(d.code, status.INVALID_ARGUMENT);
    assert.equal(d.metadata.field, "units");
  });

  test("NOT_OWNER carries shard, epoch and the owner when known", () => {
    const s = parsed({
      kind: "not_owner",
      message: "shard 3 is owned by worker-2",
      shard: 3,
      epoch: 7,
      owner: "worker-2",
      ownerAddress: "10.0.0.2:50061",
      retryDelayMs: undefined,
    });
    assert.equal(s.code, status.FAILED_PRECONDITION);
    assert.equal(s.reason, "NOT_OWNER");
    assert.deepEqual(s.metadata, {
      shard: "3",
      epoch: "7",
      owner: "worker-2",
      ownerAddress: "10.0.0.2:50061",
    });
    assert.equal(s.retryDelayMs, undefined);
  });

  test("transient failures are UNAVAILABLE with RetryInfo; the rest carry no reason", () => {
    const r = parsed({
      kind: "unavailable",
      reason: "SHARD_RECOVERING",
      message: "shard 1 is recovering",
      retryDelayMs: 50,
    });
    assert.equal(r.code, status.UNAVAILABLE);
    assert.equal(r.reason, "SHARD_RECOVERING");
    assert.equal(r.retryDelayMs, 50);
    const j = parsed({ kind: "error", error: new JournalUnavailableError("down", true) });
    assert.equal(j.code, status.UNAVAILABLE);
    assert.equal(j.reason, "JOURNAL_UNAVAILABLE");
    assert.equal(j.retryDelayMs, 100);
    assert.equal(
      parsed({ kind: "deadline_exceeded", message: "late" }).code,
      status.DEADLINE_EXCEEDED,
    );
    const bug = parsed({ kind: "error", error: new Error("secret detail") });
    assert.equal(bug.code, status.INTERNAL);
    assert.match(bug.message, /^internal error [0-9a-f-]{36} \(logged by the worker\)$/);
    assert.equal(bug.reason, "INTERNAL_ERROR");
    assert.equal(bug.metadata.errorId, bug.message.split(" ")[2]);
  });
});
