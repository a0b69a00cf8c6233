import assert from "node:assert/strict";
import { test } from "node:test";
import { effectiveQuorum, majority } from "./quorum.js";

test("a majority of n workers is more than half of them", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(majority), [1, 2, 2, 3, 3, 4, 4]);
});

test("the stated quorum wins over the default, and the default over a majority of the known", () => {
  assert.equal(effectiveQuorum({ quorum: 1 }, 3, 5), 1);
  assert.equal(effectiveQuorum({}, 3, 5), 3);
  assert.equal(effectiveQuorum(undefined, 3, 5), 3);
  assert.equal(effectiveQuorum({}, undefined, 5), 3);
  assert.equal(effectiveQuorum(undefined, undefined, 0), 1);
});
