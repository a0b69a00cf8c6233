import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ERROR_DOMAIN,
  ErrorInfo,
  RetryInfo,
  STATUS_DETAILS_KEY,
  RpcStatus as Status,
} from "@berth/proto";
import { Metadata, status } from "@grpc/grpc-js";
import { parseRichStatus, RichStatusError, richStatus } from "./rich-status.js";

function detailsOf(err: RichStatusError): Status {
  const [raw] = err.metadata.get(STATUS_DETAILS_KEY);
  assert.ok(raw instanceof Buffer);
  return Status.decode(raw);
}

test("richStatus builds a ServiceError-shaped error with the status in grpc-status-details-bin", () => {
  const err = richStatus(status.FAILED_PRECONDITION, "pool a/b has 2 units left", {
    reason: "INSUFFICIENT_CAPACITY",
    metadata: { pool: "a/b", available: "2" },
  });
  assert.ok(err instanceof RichStatusError);
  assert.ok(err instanceof Error);
  assert.equal(err.name, "RichStatusError");
  assert.equal(err.code, status.FAILED_PRECONDITION);
  assert.equal(err.details, "pool a/b has 2 units left");
  assert.equal(err.message, "pool a/b has 2 units left");
  const decoded = detailsOf(err);
  assert.equal(decoded.code, status.FAILED_PRECONDITION);
  assert.equal(decoded.message, "pool a/b has 2 units left");
  assert.deepEqual(
    decoded.details.map((d) => d.typeUrl),
    ["type.googleapis.com/google.rpc.ErrorInfo"],
  );
  const info = ErrorInfo.decode((decoded.details[0] as { value: Buffer }).value);
  assert.deepEqual(info, {
    reason: "INSUFFICIENT_CAPACITY",
    domain: "berth.dev",
    metadata: { pool: "a/b", available: "2" },
  });
});

test("a retry delay is packed as RetryInfo with seconds and nanos", () => {
  const err = richStatus(status.UNAVAILABLE, "recovering", {
    reason: "SHARD_RECOVERING",
    retryDelayMs: 1500.25,
  });
  const decoded = detailsOf(err);
  assert.equal(decoded.details[1]?.typeUrl, "type.googleapis.com/google.rpc.RetryInfo");
  assert.deepEqual(RetryInfo.decode((decoded.details[1] as { value: Buffer }).value), {
    retryDelay: { seconds: 1, nanos: 500_250_000 },
  });
});

test("a rich status round trips through parseRichStatus without a network", () => {
  const err = richStatus(status.INVALID_ARGUMENT, "bad request", {
    reason: "INVALID_FIELD",
    retryDelayMs: 0,
    fieldViolations: [{ field: "units", description: "must be between 1 and 1000000" }],
  });
  assert.deepEqual(parseRichStatus(err), {
    code: status.INVALID_ARGUMENT,
    message: "bad request",
    reason: "INVALID_FIELD",
    domain: ERROR_DOMAIN,
    metadata: {},
    retryDelayMs: 0,
    fieldViolations: [{ field: "units", description: "must be between 1 and 1000000" }],
  });
});

test("richStatus refuses code OK and a negative or infinite retry delay", () => {
  assert.throws(() => richStatus(status.OK, "fine", { reason: "NO_OWNER" }), {
    name: "RangeError",
    message: "a rich status must not have code OK",
  });
  for (const bad of [-1, Number.POSITIVE_INFINITY, Number.NaN]) {
    assert.throws(
      () => richStatus(status.UNAVAILABLE, "x", { reason: "NO_OWNER", retryDelayMs: bad }),
      {
        name: "RangeError",
        message: `retry delay must be a non-negative number of milliseconds, got ${String(bad)}`,
      },
    );
  }
});

test("parsing an error without details gives its code and message only", () => {
  assert.deepEqual(
    parseRichStatus(
      Object.assign(new Error("14 UNAVAILABLE: x"), {
        code: 14,
        details: "x",
        metadata: new Metadata(),
      }),
    ),
    {
      code: 14,
      message: "x",
      metadata: {},
    },
  );
  assert.deepEqual(parseRichStatus(new Error("boom")), {
    code: status.UNKNOWN,
    message: "boom",
    metadata: {},
  });
  assert.deepEqual(parseRichStatus("boom"), {
    code: status.UNKNOWN,
    message: "boom",
    metadata: {},
  });
  assert.deepEqual(parseRichStatus(null), { code: status.UNKNOWN, message: "null", metadata: {} });
});

test("undecodable details and details with another code are ignored", () => {
  const garbage = new Metadata();
  garbage.set(STATUS_DETAILS_KEY, Buffer.from([0xff, 0xff, 0xff]));
  assert.deepEqual(parseRichStatus({ code: 5, details: "gone", metadata: garbage }), {
    code: 5,
    message: "gone",
    metadata: {},
  });
  const other = richStatus(status.NOT_FOUND, "no pool", { reason: "POOL_NOT_FOUND" });
  assert.deepEqual(
    parseRichStatus({ code: status.INTERNAL, details: "oops", metadata: other.metadata }),
    {
      code: status.INTERNAL,
      message: "oops",
      metadata: {},
    },
  );
});

test("unknown detail types are skipped and a corrupt detail does not hide the others", () => {
  const metadata = new Metadata();
  const info = Buffer.from(
    ErrorInfo.encode({
      reason: "NO_OWNER",
      domain: ERROR_DOMAIN,
      metadata: { shard: "3" },
    }).finish(),
  );
  metadata.set(
    STATUS_DETAILS_KEY,
    Buffer.from(
      Status.encode({
        code: 14,
        message: "m",
        details: [
          { typeUrl: "type.googleapis.com/google.rpc.DebugInfo", value: Buffer.from([1, 2, 3]) },
          { typeUrl: "type.googleapis.com/google.rpc.RetryInfo", value: Buffer.from([0xff]) },
          { typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: info },
        ],
      }).finish(),
    ),
  );
  assert.deepEqual(parseRichStatus({ code: 14, details: "m", metadata }), {
    code: 14,
    message: "m",
    reason: "NO_OWNER",
    domain: ERROR_DOMAIN,
    metadata: { shard: "3" },
  });
});
