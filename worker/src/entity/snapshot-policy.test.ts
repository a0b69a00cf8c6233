import assert from "node:assert/strict";
import { test } from "node:test";
import { evolve, initialState, type PoolEvent, type PoolState } from "../domain/pool.js";
import { configured, released, reserved } from "../domain/pool-testkit.js";
import { snapshotDue, snapshotEntries } from "./snapshot-policy.js";

/** The state after `events`, applied at seqs 1, 2, … */
function stateAfter(...events: PoolEvent[]): PoolState {
  let state = initialState("default/policy");
  for (const event of events) state = evolve(state, event, state.version + 1);
  return state;
}

test("a pool with no snapshot is due once `every` events were appended, not before", () => {
  assert.equal(snapshotDue(99, 0, 0, false, 100), false);
  assert.equal(snapshotDue(100, 0, 0, false, 100), true);
  assert.equal(snapshotDue(101, 0, 0, false, 100), true);
});

test("events are counted from the last snapshot, not from the start of the pool", () => {
  assert.equal(snapshotDue(399, 300, 40, false, 100), false);
  assert.equal(snapshotDue(400, 300, 40, false, 100), true);
});

test("a snapshot in flight holds back the next one, however many events passed", () => {
  assert.equal(snapshotDue(100, 0, 0, true, 100), false);
  assert.equal(snapshotDue(10_000, 300, 40, true, 100), false);
});

test("a pool whose last snapshot listed more reservations than `every` waits for as many events", () => {
  assert.equal(snapshotDue(300 + 249, 300, 250, false, 100), false);
  assert.equal(snapshotDue(300 + 250, 300, 250, false, 100), true);
  // Fewer entries than `every`: `every` rules.
  assert.equal(snapshotDue(300 + 99, 300, 99, false, 100), false);
});

test("a snapshot's entries are the pool's active and released reservations, not its events", () => {
  assert.equal(snapshotEntries(stateAfter()), 0);
  const state = stateAfter(
    configured({ capacity: 10 }),
    reserved("a", 1),
    reserved("b", 2),
    reserved("c", 1),
    released(2, 1),
  );
  assert.equal(state.version, 5);
  assert.equal(snapshotEntries(state), 3);
});
