import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CommandQueue,
  expiredAnswer,
  JOURNAL_RETRY_MS,
  journalUnavailable,
  NO_COMMANDS,
  type PendingCommand,
} from "./command-queue.js";
import type { AnyEntityOutcome } from "./entity-outcome.js";

const POOL = "default/q";

/** A pending read named `name`, recording its answers in `answers`. */
function pending(
  name: string,
  deadline: number,
  answers: Map<string, AnyEntityOutcome>,
  failedFromVersion?: number,
): PendingCommand & { readonly name: string } {
  return {
    name,
    command: { type: "read" },
    deadline,
    resolve: (outcome) => {
      assert.equal(answers.has(name), false, `${name} answered once`);
      answers.set(name, outcome);
    },
    failedFromVersion,
    next: undefined,
  };
}

function names(taken: readonly PendingCommand[]): string[] {
  return taken.map((p) => (p as PendingCommand & { name: string }).name);
}

function drain(q: CommandQueue): string[] {
  const out: PendingCommand[] = [];
  for (let p = q.shift(); p !== undefined; p = q.shift()) out.push(p);
  return names(out);
}

test("commands leave in arrival order, and the length follows", () => {
  const answers = new Map<string, AnyEntityOutcome>();
  const q = new CommandQueue();
  for (const n of ["a", "b", "c"]) q.push(pending(n, 10, answers));
  assert.equal(q.length, 3);
  assert.deepEqual(names([q.shift() as PendingCommand]), ["a"]);
  assert.equal(q.length, 2);
  q.push(pending("d", 10, answers));
  assert.deepEqual(drain(q), ["b", "c", "d"]);
  assert.equal(q.length, 0);
  assert.equal(q.shift(), undefined);
  q.push(pending("e", 10, answers));
  assert.deepEqual(drain(q), ["e"], "an emptied queue takes commands again");
});

test("requeued commands go back to the front in their order, ahead of what waits", () => {
  const answers = new Map<string, AnyEntityOutcome>();
  const q = new CommandQueue();
  const a = pending("a", 10, answers);
  const b = pending("b", 10, answers);
  q.push(a);
  q.push(b);
  q.push(pending("c", 10, answers));
  const batch = [q.shift() as PendingCommand, q.shift() as PendingCommand];
  q.requeue(batch);
  assert.equal(q.length, 3);
  q.push(pending("d", 10, answers));
  assert.deepEqual(drain(q), ["a", "b", "c", "d"]);
  q.requeue([a, b]);
  q.push(pending("e", 10, answers));
  assert.deepEqual(drain(q), ["a", "b", "e"], "requeued into an empty queue, then pushed behind");
});

test("take empties the queue and returns what it held, in order", () => {
  const answers = new Map<string, AnyEntityOutcome>();
  const q = new CommandQueue();
  for (const n of ["a", "b", "c"]) q.push(pending(n, 10, answers));
  assert.deepEqual(names(q.take()), ["a", "b", "c"]);
  assert.equal(q.length, 0);
  assert.deepEqual(q.take(), []);
  q.push(pending("d", 10, answers));
  assert.deepEqual(drain(q), ["d"]);
});

test("expire answers exactly the commands whose deadline is at or before now, and keeps the others in order", () => {
  const answers = new Map<string, AnyEntityOutcome>();
  const q = new CommandQueue();
  q.push(pending("first-expired", 5, answers));
  q.push(pending("kept-1", 6, answers));
  q.push(pending("middle-expired", 4, answers));
  q.push(pending("kept-2", 100, answers));
  q.push(pending("last-expired", 5, answers));
  q.expire(5, POOL);
  assert.deepEqual([...answers.keys()], ["first-expired", "middle-expired", "last-expired"]);
  assert.equal(answers.get("middle-expired")?.kind, "deadline_exceeded");
  assert.equal(q.length, 2);
  q.push(pending("after", 100, answers));
  assert.deepEqual(drain(q), ["kept-1", "kept-2", "after"], "the tail moved back past the expired");
});

test("expiring every command leaves an empty queue that takes commands again", () => {
  const answers = new Map<string, AnyEntityOutcome>();
  const q = new CommandQueue();
  q.push(pending("a", 1, answers));
  q.push(pending("b", 1, answers));
  q.expire(1, POOL);
  assert.equal(q.length, 0);
  q.push(pending("c", 10, answers));
  assert.deepEqual(drain(q), ["c"]);
});

test("a command expired after an append of unknown outcome is told UNAVAILABLE, not that nothing was written", () => {
  const answers = new Map<string, AnyEntityOutcome>();
  assert.deepEqual(expiredAnswer(pending("fresh", 1, answers), POOL), {
    kind: "deadline_exceeded",
    message: `pool ${POOL}: the deadline passed before the command could run`,
  });
  const retried = expiredAnswer(pending("retried", 1, answers, 7), POOL);
  assert.equal(retried.kind, "unavailable");
  assert.match(
    retried.kind === "unavailable" ? retried.message : "",
    /outcome is unknown — retry with the same request/,
  );
});

test("UNAVAILABLE says the outcome is unknown only when it may be", () => {
  const answers = new Map<string, AnyEntityOutcome>();
  assert.deepEqual(journalUnavailable(POOL, undefined), {
    kind: "unavailable",
    reason: "JOURNAL_UNAVAILABLE",
    message: `pool ${POOL}: the journal is unavailable`,
    retryDelayMs: JOURNAL_RETRY_MS,
  });
  const unknown = (o: ReturnType<typeof journalUnavailable>) =>
    o.kind === "unavailable" && o.message.includes("outcome is unknown");
  assert.equal(unknown(journalUnavailable(POOL, pending("a", 1, answers))), false);
  assert.equal(unknown(journalUnavailable(POOL, pending("b", 1, answers, 3))), true);
  assert.equal(unknown(journalUnavailable(POOL, undefined, true)), true);
});

test("the shared empty queue refuses a command instead of keeping it for every idle entity", () => {
  const answers = new Map<string, AnyEntityOutcome>();
  assert.equal(NO_COMMANDS.length, 0);
  assert.deepEqual(NO_COMMANDS.take(), []);
  NO_COMMANDS.expire(Number.MAX_SAFE_INTEGER, POOL);
  assert.throws(() => NO_COMMANDS.push(pending("a", 1, answers)), TypeError);
  assert.equal(NO_COMMANDS.length, 0);
});
