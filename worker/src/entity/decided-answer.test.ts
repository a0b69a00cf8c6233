import assert from "node:assert/strict";
import { test } from "node:test";
import {
  evolve,
  initialState,
  type PoolEvent,
  type PoolState,
  type Rejection,
  type Reply,
} from "../domain/pool.js";
import { configure, configured, release, reserve, reserved } from "../domain/pool-testkit.js";
import { acceptedAnswer, readAnswer, rejectedAnswer } from "./decided-answer.js";

function stateAfter(...events: PoolEvent[]): PoolState {
  let state = initialState("default/answers");
  for (const event of events) state = evolve(state, event, state.version + 1);
  return state;
}

/** A pool configured at seq 1, reservation "a" at seq 2, then unrelated reservations up to seq 5. */
const state = stateAfter(
  configured({ capacity: 10 }),
  reserved("a", 1),
  reserved("b", 1),
  reserved("c", 1),
  reserved("d", 1),
);
const replayedA: Reply = {
  type: "reserved",
  reservationSeq: 2,
  units: 1,
  replayed: true,
  secret: undefined,
};

const notFound: Rejection = { code: "POOL_NOT_FOUND", message: "no such pool" };

/** Whether the answer's reservation reply says replayed. */
function replayed(answer: ReturnType<typeof acceptedAnswer>): boolean {
  const reply = replyOf(answer);
  assert.equal(reply.type, "reserved");
  return reply.type === "reserved" && reply.replayed;
}

function replyOf(answer: ReturnType<typeof acceptedAnswer>): Reply {
  assert.equal(answer.outcome.kind, "ok");
  if (answer.outcome.kind !== "ok") throw new Error("not ok");
  return answer.outcome.reply;
}

test("a replay of the reservation its own unconfirmed append wrote is its caller's first answer", () => {
  // The failed append was made at expectedVersion 1: its reservation landed at seq 2.
  const answer = acceptedAnswer(reserve(1, "a"), replayedA, false, state, 1);
  assert.equal(replayed(answer), false);
  assert.equal(answer.outcome.kind === "ok" && answer.outcome.version, 5);
});

test("a replay of a reservation older than the command's failed append stays a replay", () => {
  for (const failedFromVersion of [2, 4, undefined]) {
    const answer = acceptedAnswer(reserve(1, "a"), replayedA, false, state, failedFromVersion);
    assert.equal(replayed(answer), true, `failed from version ${failedFromVersion}`);
  }
});

test("only an answer that rests on the in-memory state waits for the journal to confirm it", () => {
  const unchanged: Reply = { type: "configured", changed: false };
  const changed: Reply = { type: "configured", changed: true };
  const alreadyReleased: Reply = {
    type: "released",
    reservationSeq: 2,
    units: 1,
    alreadyReleased: true,
  };
  assert.equal(
    acceptedAnswer(configure({ capacity: 10 }), unchanged, false, state, undefined).confirm,
    true,
  );
  assert.equal(
    acceptedAnswer(configure({ capacity: 20 }), changed, true, state, undefined).confirm,
    false,
  );
  assert.equal(acceptedAnswer(reserve(1, "a"), replayedA, false, state, undefined).confirm, false);
  assert.equal(
    acceptedAnswer(release(2, "a"), alreadyReleased, false, state, undefined).confirm,
    false,
  );
  assert.equal(readAnswer(state).confirm, true);
  assert.equal(rejectedAnswer(notFound, state).confirm, true);
});

test("configure and retire answer with the pool's counters; reserve and release do not", () => {
  const configuredAnswer = acceptedAnswer(
    configure({ capacity: 10 }),
    { type: "configured", changed: false },
    false,
    state,
    undefined,
  );
  assert.equal(
    configuredAnswer.outcome.kind === "ok" && configuredAnswer.outcome.view?.activeReservations,
    4,
  );
  const reserveAnswer = acceptedAnswer(reserve(1, "a"), replayedA, false, state, undefined);
  assert.equal(reserveAnswer.outcome.kind === "ok" && reserveAnswer.outcome.view, undefined);
});

test("reads and rejections answer as of the state they were decided against", () => {
  const read = readAnswer(state).outcome;
  assert.equal(read.kind === "view" && read.view?.activeReservations, 4);
  const rejected = rejectedAnswer(notFound, state).outcome;
  assert.deepEqual(rejected, { kind: "rejected", rejection: notFound, version: 5 });
});
