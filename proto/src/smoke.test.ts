import assert from "node:assert/strict";
import { test } from "node:test";
import { ReserveRequest } from "./gen/berth/v1/capacity.js";

test("a reserve request survives an encode/decode round trip", () => {
  const m = ReserveRequest.fromPartial({ pool: "a/b", units: 2, requestId: "r" });
  assert.deepEqual(ReserveRequest.decode(ReserveRequest.encode(m).finish()), m);
});
