import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { PoolCommand, PoolEvent, PoolSpec, PoolState, ReservationKey } from "./pool.js";
import {
  CorruptSnapshotError,
  cloneState,
  constantTimeEqual,
  DEFAULT_IDEMPOTENCY_RETENTION_MS,
  decide,
  EventSequenceError,
  evolve,
  fromSnapshot,
  InvalidCommandError,
  InvalidEventError,
  idempotencyRetentionMs,
  initialState,
  parsePoolEvent,
  poolView,
  setIdempotencyRetentionMs,
  toSnapshot,
} from "./pool.js";
import {
  configure,
  configured,
  given,
  givenPool,
  legacyReserved,
  PoolTestkitAssertionError,
  release,
  released,
  releaseWith,
  reserve,
  reserved,
  retire,
  retired,
  secretOf,
  spec,
  TEST_POOL,
} from "./pool-testkit.js";

describe("configure", () => {
  test("configuring a new pool emits configured and reports a change", () => {
    given()
      .when(configure({ capacity: 5, labels: { zone: "a" } }, 7))
      .thenEvents(configured({ capacity: 5, labels: { zone: "a" } }, 7))
      .thenReply({ type: "configured", changed: true });
  });

  test("configuring the same spec again emits nothing and reports no change", () => {
    given(configured({ capacity: 5, labels: { b: "2", a: "1" } }))
      .when(configure({ capacity: 5, labels: { a: "1", b: "2" } }))
      .thenEvents()
      .thenReply({ type: "configured", changed: false });
  });

  test("a generation-only change is recorded so status can report observedGeneration", () => {
    const then = given(configured({ generation: 1 }))
      .when(configure({ generation: 2 }))
      .thenEvents(configured({ generation: 2 }))
      .thenReply({ type: "configured", changed: true });
    assert.ok(then.decision.ok);
    const [event] = then.decision.events;
    assert.ok(event);
    assert.equal(poolView(evolve(then.state, event, 2))?.generation, 2);
  });

  for (const [what, change] of [
    ["capacity", { capacity: 11 }],
    ["closed", { closed: true }],
    ["labels", { labels: { zone: "b" } }],
    ["window", { window: { startMs: 0, endMs: 1000 } }],
  ] as const) {
    test(`a change of ${what} emits configured`, () => {
      given(configured({ labels: { zone: "a" } }))
        .when(configure({ labels: { zone: "a" }, ...change }))
        .thenEvents(configured({ labels: { zone: "a" }, ...change }))
        .thenReply({ type: "configured", changed: true });
    });
  }

  test("unknown fields of a spec are not journaled", () => {
    const withExtra = { ...spec(), extra: "x" } as PoolSpec;
    const d = given().when({ type: "configure", spec: withExtra, at: 0 }).decision;
    assert.ok(d.ok);
    assert.deepEqual(Object.keys((d.events[0] as { spec: PoolSpec }).spec).sort(), [
      "capacity",
      "closed",
      "generation",
      "labels",
    ]);
  });

  test("a capacity cut leaves reservations in place and reports the pool over-committed", () => {
    const { state } = given(
      configured({ capacity: 10 }),
      reserved("r1", 8),
      configured({ capacity: 5 }),
    );
    assert.deepEqual(poolView(state), {
      pool: TEST_POOL,
      version: 3,
      capacity: 5,
      reserved: 8,
      available: 0,
      closed: false,
      labels: {},
      window: undefined,
      generation: 1,
      activeReservations: 1,
      overCommitted: true,
      retired: false,
    });
  });
});

describe("reserve", () => {
  test("a reserve on a pool that was never configured is POOL_NOT_FOUND", () => {
    given()
      .when(reserve(1, "r1"))
      .thenRejected(
        "POOL_NOT_FOUND",
        `pool ${TEST_POOL} does not exist (it has never been configured)`,
      );
  });

  test("a reserve within capacity emits reserved and replies with the event's seq", () => {
    given(configured({ capacity: 5 }), reserved("r0", 2))
      .when(reserve(3, "r1", 42))
      .thenEvents(reserved("r1", 3, 42))
      .thenReply({
        type: "reserved",
        reservationSeq: 3,
        units: 3,
        replayed: false,
        secret: secretOf("r1"),
      });
  });

  test("a reserve beyond capacity is INSUFFICIENT_CAPACITY with the units available", () => {
    const { decision } = given(configured({ capacity: 5 }), reserved("r0", 2)).when(
      reserve(4, "r1"),
    );
    assert.deepEqual(decision, {
      ok: false,
      rejection: {
        code: "INSUFFICIENT_CAPACITY",
        message: `pool ${TEST_POOL} has 3 of 5 units available; 4 requested`,
        available: 3,
      },
    });
  });

  test("a reserve on a closed pool is POOL_CLOSED", () => {
    given(configured({ closed: true }))
      .when(reserve(1, "r1"))
      .thenRejected("POOL_CLOSED", `pool ${TEST_POOL} is closed to new reservations`);
  });

  test("a reserve once the window has ended is WINDOW_ENDED; before its start it is taken", () => {
    const windowed = configured({ window: { startMs: 1_000, endMs: 2_000 } });
    given(windowed)
      .when(reserve(1, "r1", 2_000))
      .thenRejected(
        "WINDOW_ENDED",
        `pool ${TEST_POOL} takes no new reservations: its window ended at 1970-01-01T00:00:02.000Z`,
      );
    const ended = given(windowed).when(reserve(1, "r1", 5_000)).decision;
    assert.deepEqual(ended.ok ? undefined : ended.rejection.code, "WINDOW_ENDED");
    assert.equal(
      !ended.ok && ended.rejection.code === "WINDOW_ENDED" && ended.rejection.windowEndMs,
      2_000,
    );
    given(windowed)
      .when(reserve(1, "r1", 0))
      .thenEvents(reserved("r1", 1, 0));
    given(windowed)
      .when(reserve(1, "r1", 1_999))
      .thenEvents(reserved("r1", 1, 1_999));
  });

  test("after the window ended a retried reserve still replays and a release is still taken", () => {
    const past = [configured({ window: { startMs: 0, endMs: 10 } }), reserved("r1", 2, 5)];
    given(...past)
      .when(reserve(2, "r1", 99))
      .thenReply({
        type: "reserved",
        reservationSeq: 2,
        units: 2,
        replayed: true,
        secret: secretOf("r1"),
      });
    given(...past)
      .when(release(2, "r1", 99))
      .thenEvents(released(2, 2, 99));
  });

  test("a new reservation keeps the command's secret and call token in its event", () => {
    given(configured())
      .when(reserve(1, "r1", 3, "call-A"))
      .thenEvents(reserved("r1", 1, 3, "call-A"));
  });

  test("a reserve carrying the call token that made the reservation is not a replay", () => {
    const past = [configured(), reserved("r1", 2, 0, "call-A")];
    const reply = (replayed: boolean) => ({
      type: "reserved" as const,
      reservationSeq: 2,
      units: 2,
      replayed,
      secret: secretOf("r1"),
    });
    given(...past)
      .when(reserve(2, "r1", 0, "call-A"))
      .thenEvents()
      .thenReply(reply(false));
    given(...past)
      .when(reserve(2, "r1", 0, "call-B"))
      .thenEvents()
      .thenReply(reply(true));
    given(...past)
      .when(reserve(2, "r1"))
      .thenEvents()
      .thenReply(reply(true));
    // A reservation made without a token is a replay for every later request.
    given(configured(), reserved("r1", 2))
      .when(reserve(2, "r1", 0, "call-A"))
      .thenReply(reply(true));
  });

  test("a reserve with a malformed secret or call token throws without echoing the secret", () => {
    const state = given(configured()).state;
    assert.throws(() => decide(state, { ...reserve(1, "r1"), secret: "s3cr3t" } as PoolCommand), {
      name: "InvalidCommandError",
      message: `invalid reserve command for pool ${TEST_POOL}: secret must be 22 base64url characters`,
    });
    assert.throws(() => decide(state, reserve(1, "r1", 0, "has space")), {
      name: "InvalidCommandError",
      message: `invalid reserve command for pool ${TEST_POOL}: callToken must be 1 to 64 printable ASCII characters`,
    });
  });

  test("a retried reserve replays the original reservation and emits nothing", () => {
    given(configured({ capacity: 5 }), reserved("r1", 5))
      .when(reserve(5, "r1"))
      .thenEvents()
      .thenReply({
        type: "reserved",
        reservationSeq: 2,
        units: 5,
        replayed: true,
        secret: secretOf("r1"),
      });
  });

  test("a retried reserve replays even after release and after the pool closed", () => {
    given(configured(), reserved("r1", 2), released(2, 2), configured({ closed: true }))
      .when(reserve(2, "r1"))
      .thenEvents()
      .thenReply({
        type: "reserved",
        reservationSeq: 2,
        units: 2,
        replayed: true,
        secret: secretOf("r1"),
      });
  });

  test("a request id reused with different units is REQUEST_ID_REUSED", () => {
    given(configured(), reserved("r1", 2))
      .when(reserve(3, "r1"))
      .thenRejected(
        "REQUEST_ID_REUSED",
        `pool ${TEST_POOL}: request id "r1" was already used for a reservation of 2 units (seq 2); this request asks for 3`,
      );
  });

  test("an over-committed pool accepts no reserve until reserved + units fits", () => {
    const past = [configured({ capacity: 10 }), reserved("r1", 6), configured({ capacity: 4 })];
    given(...past)
      .when(reserve(1, "r2"))
      .thenRejected(
        "INSUFFICIENT_CAPACITY",
        `pool ${TEST_POOL} has 0 of 4 units available; 1 requested (over-committed: 6 reserved of capacity 4)`,
      );
    given(...past, released(2, 6))
      .when(reserve(4, "r2"))
      .thenReply({
        type: "reserved",
        reservationSeq: 5,
        units: 4,
        replayed: false,
        secret: secretOf("r2"),
      });
  });

  for (const [what, units] of [
    ["zero", 0],
    ["negative", -1],
    ["fractional", 1.5],
    ["NaN", Number.NaN],
    ["unsafe", 2 ** 53],
  ] as const) {
    test(`a reserve of ${what} units is a programming error and throws`, () => {
      assert.throws(
        () => decide(given(configured()).state, reserve(units, "r1")),
        (e: unknown) =>
          e instanceof InvalidCommandError &&
          e.name === "InvalidCommandError" &&
          e.message ===
            `invalid reserve command for pool ${TEST_POOL}: units must be a positive integer, got ${Number.isNaN(units) ? "NaN" : JSON.stringify(units)}`,
      );
    });
  }

  test("a reserve with an empty request id throws", () => {
    assert.throws(() => decide(given(configured()).state, reserve(1, "")), {
      name: "InvalidCommandError",
      message: `invalid reserve command for pool ${TEST_POOL}: requestId must be a non-empty string, got ""`,
    });
  });
});

describe("release", () => {
  test("releasing an active reservation emits released with its units", () => {
    given(configured(), reserved("r1", 3))
      .when(release(2, "r1", 9))
      .thenEvents(released(2, 3, 9))
      .thenReply({ type: "released", reservationSeq: 2, units: 3, alreadyReleased: false });
  });

  test("releasing a released reservation emits nothing and reports alreadyReleased", () => {
    given(configured(), reserved("r1", 3), released(2, 3))
      .when(release(2, "r1"))
      .thenEvents()
      .thenReply({ type: "released", reservationSeq: 2, units: 3, alreadyReleased: true });
  });

  test("releasing on a closed pool is allowed", () => {
    given(configured(), reserved("r1", 3), configured({ closed: true }))
      .when(release(2, "r1"))
      .thenEvents(released(2, 3));
  });

  test("releasing a seq that is not a reservation is RESERVATION_NOT_FOUND", () => {
    given(configured(), reserved("r1", 3))
      .when(release(1, "r1"))
      .thenRejected("RESERVATION_NOT_FOUND", `pool ${TEST_POOL} has no reservation with this id`);
    given(configured())
      .when(release(99, "r1"))
      .thenRejected("RESERVATION_NOT_FOUND", `pool ${TEST_POOL} has no reservation with this id`);
  });

  test("a release whose secret does not match is rejected exactly like an unknown reservation", () => {
    const past = [configured(), reserved("r1", 3), reserved("r2", 1), released(3, 1)];
    const unknown = given(...past).when(release(99, "r1")).decision;
    const forgeries: [string, PoolCommand][] = [
      ["another reservation's secret", release(2, "r2")],
      ["a made-up secret", releaseWith(2, { kind: "secret", secret: secretOf("guess") })],
      [
        "a legacy id with a valid checksum",
        releaseWith(2, { kind: "legacy", checksumValid: true }),
      ],
      ["a legacy id with a bad checksum", releaseWith(2, { kind: "legacy", checksumValid: false })],
      ["a wrong secret for a released reservation", release(3, "r1")],
    ];
    for (const [what, command] of forgeries) {
      const then = given(...past).when(command);
      assert.deepEqual(then.decision, unknown, what);
    }
    // The rightful holder still releases it.
    given(...past)
      .when(release(2, "r1"))
      .thenEvents(released(2, 3));
  });

  test("a reservation made before secrets existed is released by its legacy id with a valid checksum only", () => {
    const past = [configured(), legacyReserved("old", 2)];
    given(...past)
      .when(releaseWith(2, { kind: "legacy", checksumValid: true }))
      .thenEvents(released(2, 2));
    given(...past)
      .when(releaseWith(2, { kind: "legacy", checksumValid: false }))
      .thenRejected("RESERVATION_NOT_FOUND", `pool ${TEST_POOL} has no reservation with this id`);
    given(...past)
      .when(release(2, "old"))
      .thenRejected("RESERVATION_NOT_FOUND", `pool ${TEST_POOL} has no reservation with this id`);
    given(...past)
      .when(reserve(2, "old"))
      .thenReply({
        type: "reserved",
        reservationSeq: 2,
        units: 2,
        replayed: true,
        secret: undefined,
      });
  });

  test("constantTimeEqual is string equality", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        assert.equal(constantTimeEqual(a, b), a === b);
        assert.equal(constantTimeEqual(a, a), true);
      }),
    );
  });

  test("releasing on a pool that was never configured is POOL_NOT_FOUND", () => {
    given().when(release(1, "r1")).thenRejected("POOL_NOT_FOUND");
  });

  test("a release with a malformed secret is a programming error and does not echo it", () => {
    assert.throws(
      () => decide(given(configured()).state, releaseWith(1, { kind: "secret", secret: "short" })),
      {
        name: "InvalidCommandError",
        message: `invalid release command for pool ${TEST_POOL}: key.secret must be 22 base64url characters`,
      },
    );
  });

  test("a release of seq 0 throws", () => {
    assert.throws(() => decide(given(configured()).state, release(0, "r1")), {
      name: "InvalidCommandError",
      message: `invalid release command for pool ${TEST_POOL}: reservationSeq must be a positive integer, got 0`,
    });
  });
});

describe("retire (the CapacityPool was deleted)", () => {
  const unknownReservation = {
    code: "RESERVATION_NOT_FOUND",
    message: `pool ${TEST_POOL} has no reservation with this id`,
  } as const;

  test("retiring a pool emits retired; retiring it again writes nothing", () => {
    const t = given(configured(), reserved("r1", 2))
      .when(retire(7))
      .thenEvents(retired(7))
      .thenReply({ type: "configured", changed: true });
    given(configured(), reserved("r1", 2), retired())
      .when(retire())
      .thenEvents()
      .thenReply({ type: "configured", changed: false });
    assert.ok(t.decision.ok);
  });

  test("retiring a pool that was never configured writes nothing", () => {
    given().when(retire()).thenEvents().thenReply({ type: "configured", changed: false });
  });

  test("a retired pool answers reserves POOL_NOT_FOUND, even a retry of an old request id", () => {
    const g = given(configured(), reserved("r1", 2), retired());
    g.when(reserve(1, "new")).thenRejected(
      "POOL_NOT_FOUND",
      `pool ${TEST_POOL} does not exist (it was retired: its CapacityPool was deleted)`,
    );
    g.when(reserve(2, "r1")).thenRejected("POOL_NOT_FOUND");
  });

  test("a retired pool answers every release RESERVATION_NOT_FOUND, as an unknown id", () => {
    const g = given(configured(), reserved("r1", 2), reserved("r2", 1), released(3, 1), retired());
    assert.deepEqual(decide(g.state, release(2, "r1")), {
      ok: false,
      rejection: unknownReservation,
    });
    assert.deepEqual(decide(g.state, release(3, "r2")), {
      ok: false,
      rejection: unknownReservation,
    });
    assert.deepEqual(decide(g.state, release(99, "r1")), {
      ok: false,
      rejection: unknownReservation,
    });
  });

  test("a retired pool's view is a tombstone: nothing reserved, nothing available", () => {
    const g = given(
      configured({ capacity: 5, labels: { zone: "a" } }),
      reserved("r1", 2),
      retired(),
    );
    assert.deepEqual(poolView(g.state), {
      pool: TEST_POOL,
      version: 3,
      capacity: 0,
      reserved: 0,
      available: 0,
      closed: false,
      labels: {},
      window: undefined,
      generation: 0,
      activeReservations: 0,
      overCommitted: false,
      retired: true,
    });
    assert.equal(poolView(given().state), undefined);
    assert.equal(poolView(given(configured()).state)?.retired, false);
  });

  test("configuring a retired pool again makes a new pool: nothing carries over", () => {
    const g = given(
      configured({ capacity: 3 }),
      reserved("r1", 3),
      retired(),
      configured({ capacity: 3 }),
    );
    assert.equal(g.state.retired, false);
    assert.equal(g.state.reserved, 0);
    assert.equal(poolView(g.state)?.available, 3);
    // The old reservation cannot be released, and its request id makes a new one.
    assert.deepEqual(decide(g.state, release(2, "r1")), {
      ok: false,
      rejection: unknownReservation,
    });
    g.when(reserve(3, "r1"))
      .thenEvents(reserved("r1", 3))
      .thenReply({
        type: "reserved",
        reservationSeq: 5,
        units: 3,
        replayed: false,
        secret: secretOf("r1"),
      });
  });

  test("a retired event on a pool that does not exist throws InvalidEventError", () => {
    assert.throws(() => evolve(initialState(TEST_POOL), retired(), 1), InvalidEventError);
    const gone = given(configured(), retired()).state;
    assert.throws(() => evolve(gone, retired(), 3), InvalidEventError);
  });

  test("parsePoolEvent reads a retired event and drops unknown fields", () => {
    assert.deepEqual(parsePoolEvent(TEST_POOL, 4, { type: "retired", at: 5, extra: 1 }), {
      type: "retired",
      at: 5,
    });
    assert.throws(() => parsePoolEvent(TEST_POOL, 4, { type: "retired" }), InvalidEventError);
  });

  test("a retired pool, and one re-created after, round-trip through snapshots", () => {
    const gone = given(configured(), reserved("r1", 2), retired()).state;
    const snap = toSnapshot(gone);
    assert.deepEqual(snap, {
      v: 3,
      pool: TEST_POOL,
      version: 3,
      spec: null,
      retired: true,
      reserved: 0,
      active: [],
      released: [],
    });
    const back = fromSnapshot(JSON.parse(JSON.stringify(snap)));
    assert.deepEqual(back, gone);
    const again = given(configured(), reserved("r1", 2), retired(), configured()).state;
    assert.equal("retired" in toSnapshot(again), false);
    assert.deepEqual(fromSnapshot(JSON.parse(JSON.stringify(toSnapshot(again)))), again);
  });

  const retiredSnap = () =>
    JSON.parse(JSON.stringify(toSnapshot(given(configured(), retired()).state))) as Record<
      string,
      unknown
    >;
  const corruptions: [string, (s: Record<string, unknown>) => unknown, string][] = [
    [
      "retired not true",
      (s) => ({ ...s, retired: false }),
      "corrupt pool snapshot: retired must be true when present, got false",
    ],
    [
      "retired with a spec",
      (s) => ({ ...s, spec: { capacity: 1, labels: {}, closed: false, generation: 0 } }),
      "corrupt pool snapshot: spec is set on a retired pool",
    ],
    [
      "retired at version 0",
      (s) => ({ ...s, version: 0 }),
      "corrupt pool snapshot: retired is true at version 0",
    ],
    [
      "retired with reservations",
      (s) => ({ ...s, reserved: 1, active: [[1, 1, "r1", null, null]] }),
      "corrupt pool snapshot: active must be empty on a retired pool",
    ],
  ];
  for (const [what, mutate, message] of corruptions) {
    test(`fromSnapshot rejects ${what} with a precise error`, () => {
      assert.throws(
        () => fromSnapshot(mutate(retiredSnap())),
        (e: unknown) => e instanceof CorruptSnapshotError && e.message === message,
      );
    });
  }
});

describe("invalid commands", () => {
  test("a configure with a capacity above int32 throws", () => {
    assert.throws(() => decide(initialState("a/b"), configure({ capacity: 2 ** 31 })), {
      name: "InvalidCommandError",
      message:
        "invalid configure command for pool a/b: spec.capacity must be an integer in 0..2147483647, got 2147483648",
    });
  });

  test("a configure with an invalid label key throws", () => {
    assert.throws(() => decide(initialState("a/b"), configure({ labels: { "-x": "1" } })), {
      name: "InvalidCommandError",
      message:
        "invalid configure command for pool a/b: spec.labels label key name \"-x\" must consist of alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
    });
  });

  test("a configure with an empty window throws", () => {
    assert.throws(
      () => decide(initialState("a/b"), configure({ window: { startMs: 5, endMs: 5 } })),
      {
        name: "InvalidCommandError",
        message:
          "invalid configure command for pool a/b: spec.window.endMs must be an integer above startMs, got 5",
      },
    );
  });

  test("a command with a non-finite time throws", () => {
    assert.throws(() => decide(initialState("a/b"), release(1, "r1", Number.POSITIVE_INFINITY)), {
      name: "InvalidCommandError",
      message: "invalid release command for pool a/b: at must be a finite number, got Infinity",
    });
  });

  test("a command of unknown type throws", () => {
    const bogus = { type: "explode", at: 0 } as unknown as PoolCommand;
    assert.throws(() => decide(initialState("a/b"), bogus), {
      name: "InvalidCommandError",
      message:
        'invalid explode command for pool a/b: type must be configure, retire, reserve or release, got "explode"',
    });
  });
});

describe("evolve", () => {
  test("an event out of sequence throws EventSequenceError", () => {
    const state = given(configured()).state;
    assert.throws(
      () => evolve(state, reserved("r1", 1), 3),
      (e: unknown) =>
        e instanceof EventSequenceError &&
        e.name === "EventSequenceError" &&
        e.expectedSeq === 2 &&
        e.actualSeq === 3 &&
        e.message === `pool ${TEST_POOL}: event seq 3 applied at version 1; expected seq 2`,
    );
  });

  test("a release of a reservation that is not active throws InvalidEventError", () => {
    const state = given(configured(), reserved("r1", 1)).state;
    assert.throws(
      () => evolve(state, released(1, 1), 3),
      (e: unknown) =>
        e instanceof InvalidEventError &&
        e.message ===
          `pool ${TEST_POOL}: invalid event at seq 3: released reservation 1, which is not active`,
    );
  });

  test("a released event with the wrong units throws InvalidEventError", () => {
    const state = given(configured(), reserved("r1", 2)).state;
    assert.throws(() => evolve(state, released(2, 1), 3), {
      name: "InvalidEventError",
      message: `pool ${TEST_POOL}: invalid event at seq 3: released 1 units of reservation 2, which holds 2`,
    });
  });

  test("a reserved event before any configure throws InvalidEventError", () => {
    assert.throws(() => evolve(initialState("a/b"), reserved("r1", 1), 1), {
      name: "InvalidEventError",
      message: "pool a/b: invalid event at seq 1: reserved before the pool was configured",
    });
  });

  test("a reserved event repeating a request id throws InvalidEventError", () => {
    const state = given(configured(), reserved("r1", 1)).state;
    assert.throws(() => evolve(state, reserved("r1", 1), 3), {
      name: "InvalidEventError",
      message: `pool ${TEST_POOL}: invalid event at seq 3: request id "r1" already reserved at seq 2`,
    });
  });

  test("parsePoolEvent returns a typed event and drops unknown fields", () => {
    assert.deepEqual(
      parsePoolEvent("a/b", 4, { ...reserved("x", 2, 1, "tok"), extra: true }),
      reserved("x", 2, 1, "tok"),
    );
    // Events written before secrets existed still parse, without a secret.
    assert.deepEqual(
      parsePoolEvent("a/b", 4, { type: "reserved", requestId: "x", units: 2, at: 1 }),
      legacyReserved("x", 2, 1),
    );
  });

  test("parsePoolEvent rejects a malformed secret without echoing it", () => {
    assert.throws(() => parsePoolEvent("a/b", 4, { ...reserved("x", 2, 1), secret: "s3cr3t" }), {
      name: "InvalidEventError",
      message: "pool a/b: invalid event at seq 4: secret must be 22 base64url characters",
    });
  });

  test("parsePoolEvent rejects an unknown event type", () => {
    assert.throws(() => parsePoolEvent("a/b", 4, { type: "exploded", at: 1 }), {
      name: "InvalidEventError",
      message: 'pool a/b: invalid event at seq 4: unknown event type "exploded"',
    });
  });

  test("cloneState gives a copy that evolving the original does not change", () => {
    const state = given(configured(), reserved("r1", 1)).state;
    const copy = cloneState(state);
    const before = toSnapshot(copy);
    evolve(state, reserved("r2", 1), 3);
    assert.deepEqual(toSnapshot(copy), before);
  });
});

describe("idle pools share one empty Map (copy-on-write)", () => {
  const isEmpty = (s: PoolState) =>
    s.active.size === 0 && s.byRequest.size === 0 && s.released.size === 0;

  test("reserving and releasing in one idle pool leaves every other idle pool empty", () => {
    const other = givenPool("ns/other", configured()).state;
    const fresh = initialState("ns/fresh");
    const loaded = fromSnapshot(toSnapshot(givenPool("ns/loaded", configured()).state));
    const retiredPool = givenPool("ns/retired", configured(), retired()).state;
    const idle = [other, fresh, loaded, retiredPool];
    assert.ok(
      idle.every((s) => [s.active, s.byRequest, s.released].every((m) => m === other.active)),
      "the idle pools share one Map (else this test proves nothing)",
    );

    let busy = given(configured()).state;
    busy = evolve(busy, reserved("r1", 2), 2);
    busy = evolve(busy, reserved("r2", 3), 3);
    busy = evolve(busy, released(2, 2, 5), 4);
    assert.equal(busy.active.size, 1);
    assert.equal(busy.byRequest.size, 2);
    assert.equal(busy.released.size, 1);

    for (const s of idle) assert.ok(isEmpty(s), `${s.pool} is still empty`);
    // And another pool decides as if r1 had never been seen there.
    const d = decide(other, reserve(2, "r1"));
    assert.ok(d.ok && d.events.length === 1 && d.reply.type === "reserved" && !d.reply.replayed);
  });

  test("the Map idle pools share refuses every write", () => {
    const s = initialState("ns/a");
    const r = { seq: 1, units: 1, requestId: "x", secret: undefined, callToken: undefined };
    for (const map of [s.active, s.released] as Map<number, unknown>[]) {
      for (const write of [() => map.set(1, r), () => map.delete(1), () => map.clear()]) {
        assert.throws(write, {
          name: "TypeError",
          message: "the shared empty Map of pool states is immutable",
        });
      }
    }
    assert.ok(isEmpty(initialState("ns/b")));
  });
});

describe("pools share equal windows and label values", () => {
  const specOf = (s: PoolState) => {
    assert.ok(s.spec !== undefined, `${s.pool} is configured`);
    return s.spec;
  };

  test("equal windows and label values are one object; different ones stay apart", () => {
    const a = givenPool("ns/a", configured({ window: { startMs: 1_000, endMs: 2_000 } })).state;
    // The same window from a journal's JSON and from a snapshot: other objects, equal values.
    const b = givenPool(
      "ns/b",
      parsePoolEvent(
        "ns/b",
        1,
        JSON.parse(JSON.stringify(configured({ window: { startMs: 1_000, endMs: 2_000 } }))),
      ),
    ).state;
    const c = fromSnapshot(
      toSnapshot(givenPool("ns/c", configured({ window: { startMs: 1_000, endMs: 2_000 } })).state),
    );
    assert.ok(specOf(a).window === specOf(b).window && specOf(b).window === specOf(c).window);
    assert.ok(Object.isFrozen(specOf(a).window), "a shared window cannot be written");

    // One millisecond apart, at either end: windows of their own.
    const later = givenPool("ns/d", configured({ window: { startMs: 1_000, endMs: 2_001 } })).state;
    const earlier = givenPool("ns/e", configured({ window: { startMs: 999, endMs: 2_000 } })).state;
    assert.deepEqual(specOf(later).window, { startMs: 1_000, endMs: 2_001 });
    assert.deepEqual(specOf(earlier).window, { startMs: 999, endMs: 2_000 });
    assert.deepEqual(specOf(a).window, { startMs: 1_000, endMs: 2_000 });

    const zone = (v: string) => JSON.parse(JSON.stringify({ zone: v, slot: `${v}-1` }));
    const north1 = givenPool("ns/n1", configured({ labels: zone("north") })).state;
    const north2 = givenPool("ns/n2", configured({ labels: zone("north") })).state;
    const south = givenPool("ns/s", configured({ labels: zone("south") })).state;
    assert.deepEqual(specOf(north1).labels, { slot: "north-1", zone: "north" });
    assert.deepEqual(specOf(north2).labels, { slot: "north-1", zone: "north" });
    assert.deepEqual(specOf(south).labels, { slot: "south-1", zone: "south" });
  });

  test("a pool whose window ends 1 ms before another's decides by its own window", () => {
    const first = givenPool("ns/first", configured({ window: { startMs: 0, endMs: 10 } }));
    const second = givenPool("ns/second", configured({ window: { startMs: 0, endMs: 11 } }));
    const d1 = decide(first.state, reserve(1, "r1", 10));
    const d2 = decide(second.state, reserve(1, "r1", 10));
    assert.ok(!d1.ok && d1.rejection.code === "WINDOW_ENDED" && d1.rejection.windowEndMs === 10);
    assert.ok(d2.ok && d2.reply.type === "reserved");
    // Reconfiguring one pool's window leaves the other's alone.
    const moved = evolve(first.state, configured({ window: { startMs: 0, endMs: 11 } }), 2);
    assert.deepEqual(specOf(moved).window, { startMs: 0, endMs: 11 });
    assert.deepEqual(specOf(first.state).window, { startMs: 0, endMs: 10 });
  });
});

describe("snapshots", () => {
  test("a snapshot has the documented v3 shape: released ones in release order, with their time", () => {
    const { state } = given(
      configured({ capacity: 9, labels: { zone: "a" }, window: { startMs: 1, endMs: 2 } }),
      reserved("r1", 2),
      reserved("r2", 3, 0, "tok"),
      released(2, 2, 7),
      legacyReserved("old", 1),
    );
    assert.deepEqual(toSnapshot(state), {
      v: 3,
      pool: TEST_POOL,
      version: 5,
      spec: {
        capacity: 9,
        labels: { zone: "a" },
        closed: false,
        generation: 1,
        window: { startMs: 1, endMs: 2 },
      },
      reserved: 4,
      active: [
        [3, 3, "r2", secretOf("r2"), "tok"],
        [5, 1, "old", null, null],
      ],
      released: [[2, 2, "r1", secretOf("r1"), null, 7]],
    });
  });

  test("a v1 snapshot written by earlier builds is read: its reservations are legacy ones", () => {
    const state = fromSnapshot({
      v: 1,
      pool: TEST_POOL,
      version: 4,
      spec: { capacity: 9, labels: {}, closed: false, generation: 1 },
      reserved: 3,
      active: [[3, 3, "r2"]],
      released: [[2, 2, "r1"]],
    });
    // Its released reservation has no release time: the next event starts its window.
    assert.deepEqual(toSnapshot(state), {
      ...toSnapshot(
        given(
          configured({ capacity: 9 }),
          legacyReserved("r1", 2),
          legacyReserved("r2", 3),
          released(2, 2),
        ).state,
      ),
      released: [[2, 2, "r1", null, null, null]],
    });
    assert.deepEqual(decide(state, releaseWith(3, { kind: "legacy", checksumValid: true })), {
      ok: true,
      events: [released(3, 3)],
      reply: { type: "released", reservationSeq: 3, units: 3, alreadyReleased: false },
    });
  });

  test("a snapshot survives JSON and restores an equal state", () => {
    const { state } = given(configured(), reserved("r1", 2), reserved("r2", 3), released(2, 2));
    const restored = fromSnapshot(JSON.parse(JSON.stringify(toSnapshot(state))));
    assert.deepEqual(toSnapshot(restored), toSnapshot(state));
    assert.deepEqual(decide(restored, reserve(2, "r1")), decide(state, reserve(2, "r1")));
  });

  test("the initial state round-trips through a snapshot", () => {
    const s = initialState("a/b");
    assert.deepEqual(toSnapshot(fromSnapshot(toSnapshot(s))), toSnapshot(s));
  });

  const good = () =>
    JSON.parse(
      JSON.stringify(toSnapshot(given(configured(), reserved("r1", 2), reserved("r2", 3)).state)),
    ) as Record<string, unknown>;
  const corruptions: [string, (s: Record<string, unknown>) => unknown, string][] = [
    ["a non-object", () => "nope", "corrupt pool snapshot: (root) must be an object, got string"],
    [
      "an unknown format version",
      (s) => ({ ...s, v: 4 }),
      "corrupt pool snapshot: v must be 1, 2 or 3 (the known formats), got 4",
    ],
    [
      "a negative version",
      (s) => ({ ...s, version: -1 }),
      "corrupt pool snapshot: version must be a non-negative integer, got -1",
    ],
    [
      "a reserved total that disagrees with the reservations",
      (s) => ({ ...s, reserved: 4 }),
      "corrupt pool snapshot: reserved is 4 but the active reservations hold 5 units",
    ],
    [
      "a reservation seq beyond the version",
      (s) => ({
        ...s,
        active: [
          [2, 2, "r1", null, null],
          [9, 3, "r2", null, null],
        ],
      }),
      "corrupt pool snapshot: active[1][0] must be a seq in 1..3, got 9",
    ],
    [
      "reservations out of order",
      (s) => ({
        ...s,
        active: [
          [3, 3, "r2", null, null],
          [2, 2, "r1", null, null],
        ],
      }),
      "corrupt pool snapshot: active[1][0] seq 2 is not above 3",
    ],
    [
      "a repeated request id",
      (s) => ({
        ...s,
        active: [
          [2, 2, "r1", null, null],
          [3, 3, "r1", null, null],
        ],
      }),
      'corrupt pool snapshot: active[1][2] request id "r1" is also used by seq 2',
    ],
    [
      "a seq both active and released",
      (s) => ({ ...s, released: [[2, 2, "rx", null, null, 5]] }),
      "corrupt pool snapshot: released[0][0] seq 2 is both active and released",
    ],
    [
      "a malformed reservation",
      (s) => ({ ...s, active: [[2, 2, "r1"]] }),
      'corrupt pool snapshot: active[0] must be [seq, units, requestId, secret, callToken], got [2,2,"r1"]',
    ],
    [
      "a malformed secret (not echoed)",
      (s) => ({
        ...s,
        active: [
          [2, 2, "r1", "s3cr3t", null],
          [3, 3, "r2", null, null],
        ],
      }),
      "corrupt pool snapshot: active[0][3] must be 22 base64url characters",
    ],
    [
      "a malformed v1 reservation",
      (s) => ({ ...s, v: 1, active: [[2, 2]] }),
      "corrupt pool snapshot: active[0] must be [seq, units, requestId], got [2,2]",
    ],
    [
      "a bad spec",
      (s) => ({ ...s, spec: { ...(s.spec as object), capacity: "10" } }),
      'corrupt pool snapshot: spec.capacity must be an integer in 0..2147483647, got "10"',
    ],
    [
      "a missing spec after events",
      (s) => ({ ...s, spec: null }),
      "corrupt pool snapshot: spec is null at version 3",
    ],
  ];
  for (const [what, mutate, message] of corruptions) {
    test(`fromSnapshot rejects ${what} with a precise error`, () => {
      assert.throws(
        () => fromSnapshot(mutate(good())),
        (e: unknown) => e instanceof CorruptSnapshotError && e.message === message,
      );
    });
  }
});

describe("the testkit", () => {
  test("then fails when the events differ", () => {
    assert.throws(
      () => given(configured()).when(reserve(1, "r1")).thenEvents(reserved("r1", 2)),
      (e: unknown) =>
        e instanceof PoolTestkitAssertionError && e.message.startsWith("unexpected events"),
    );
  });

  test("then fails when a rejection was expected but the command was accepted", () => {
    assert.throws(
      () => given(configured()).when(reserve(1, "r1")).thenRejected("POOL_CLOSED"),
      (e: unknown) =>
        e instanceof PoolTestkitAssertionError &&
        e.message.startsWith("expected rejection POOL_CLOSED"),
    );
  });
});

// ---- properties ---------------------------------------------------------------

/**
 * Model-generated steps. Release targets are resolved at run time against the
 * reservations made so far, so releases mostly hit real (active or released) seqs.
 */
type Forgery = "none" | "guess" | "other" | "legacy-valid" | "legacy-bad";
type Step =
  | { readonly kind: "configure"; readonly spec: PoolSpec }
  /** The CapacityPool is deleted (it may be configured again later: re-created). */
  | { readonly kind: "retire" }
  | {
      readonly kind: "reserve";
      readonly units: number;
      readonly requestId: string;
      readonly callToken: string | undefined;
    }
  | {
      readonly kind: "release";
      readonly pick: number;
      readonly unknownSeq: number;
      /** "none": the holder's own key; otherwise a key that is not the reservation's. */
      readonly forge: Forgery;
      readonly guess: string;
    }
  /** Re-sends an earlier reserve command verbatim (a client retry). */
  | { readonly kind: "retry"; readonly pick: number };

const labelsArb = fc.dictionary(
  fc.constantFrom("zone", "tier", "berth.dev/kind"),
  fc.constantFrom("a", "b", ""),
  { maxKeys: 2 },
);
const specArb: fc.Arbitrary<PoolSpec> = fc.record(
  {
    capacity: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(2_147_483_647)),
    labels: labelsArb,
    closed: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, fc.constant(true)),
    generation: fc.integer({ min: 0, max: 3 }),
    // Steps are `at` 0, 1, 2, …: small windows make reserves land before, in and after them.
    window: fc
      .tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 60 }))
      .map(([startMs, len]) => ({ startMs, endMs: startMs + len })),
  },
  { requiredKeys: ["capacity", "labels", "closed", "generation"] },
);
const REQUEST_IDS = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"];
const secretArb = fc.stringMatching(/^[A-Za-z0-9_-]{22}$/);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 1, arbitrary: specArb.map((spec) => ({ kind: "configure" as const, spec })) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("reserve" as const),
      units: fc.integer({ min: 1, max: 8 }),
      requestId: fc.constantFrom(...REQUEST_IDS),
      callToken: fc.constantFrom(undefined, "call-0", "call-1"),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("release" as const),
      pick: fc.nat(),
      unknownSeq: fc.integer({ min: 1, max: 100 }),
      forge: fc.constantFrom<Forgery>(
        "none",
        "none",
        "guess",
        "other",
        "legacy-valid",
        "legacy-bad",
      ),
      guess: secretArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("retry" as const), pick: fc.nat() }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "retire" as const }) },
);
// Most runs start configured; some never are (every command must then be POOL_NOT_FOUND).
const stepsArb = fc.tuple(
  fc.option(specArb, { freq: 8 }),
  fc.array(stepArb, { maxLength: 80, size: "medium" }),
);

interface Run {
  readonly state: PoolState;
  readonly log: readonly PoolEvent[];
  /** Every reservation seq made (active or released), in order. */
  readonly seqs: readonly number[];
}

function toCommand(
  step: Step,
  state: PoolState,
  seqs: readonly number[],
  reserves: readonly PoolCommand[],
  at: number,
): PoolCommand {
  switch (step.kind) {
    case "configure":
      return { type: "configure", spec: step.spec, at };
    case "retire":
      return retire(at);
    case "reserve":
      return reserve(step.units, step.requestId, at, step.callToken);
    case "release": {
      // One slot past the known seqs means "some seq that may not be a reservation".
      const i = step.pick % (seqs.length + 1);
      const reservationSeq = seqs[i] ?? step.unknownSeq;
      const holder = state.active.get(reservationSeq) ?? state.released.get(reservationSeq);
      const own = holder?.requestId ?? "r0";
      const key: ReservationKey =
        step.forge === "none"
          ? { kind: "secret", secret: secretOf(own) }
          : step.forge === "guess"
            ? { kind: "secret", secret: step.guess }
            : step.forge === "other"
              ? { kind: "secret", secret: secretOf(REQUEST_IDS.find((r) => r !== own) ?? "x") }
              : { kind: "legacy", checksumValid: step.forge === "legacy-valid" };
      return releaseWith(reservationSeq, key, at);
    }
    case "retry":
      return reserves[step.pick % Math.max(1, reserves.length)] ?? release(1, "r0", at);
  }
}

/**
 * Runs the steps, checking per-step invariants (a) no oversell, (b) replays, (c)
 * idempotent release, (d) only the holder's key releases, and answers for a wrong
 * key are those for an unknown reservation, (e) no new reservation once the window
 * has ended, (f) a retired pool does not exist and nothing of it outlives it (no
 * reservation releasable, no request id replayed), and decide's purity.
 */
function run(first: PoolSpec | null, steps: readonly Step[]): Run {
  let state = initialState("ns/prop");
  const log: PoolEvent[] = [];
  const seqs: number[] = [];
  const reserves: PoolCommand[] = [];
  const firstSeqOf = new Map<
    string,
    { seq: number; units: number; callToken: string | undefined }
  >();
  /** Version of the last retirement: no reservation at or below it exists any more. */
  let retiredAt = 0;
  const all: Step[] =
    first === null ? steps.slice() : [{ kind: "configure", spec: first }, ...steps];
  all.forEach((step, at) => {
    const command = toCommand(step, state, seqs, reserves, at);
    const unknownAnswer = decide(state, release(Number.MAX_SAFE_INTEGER, "r0", at));
    if (command.type === "reserve") reserves.push(command);
    const before = JSON.stringify(toSnapshot(state));
    const d = decide(state, command);
    assert.equal(JSON.stringify(toSnapshot(state)), before, "decide must not change the state");
    if (state.spec === undefined && command.type === "retire") {
      // (f) retiring a pool that does not exist writes nothing.
      assert.ok(d.ok && d.events.length === 0);
    } else if (state.spec === undefined && command.type !== "configure") {
      // (f) a retired pool's reservations are gone; otherwise the pool never existed.
      const code =
        state.retired && command.type === "release" ? "RESERVATION_NOT_FOUND" : "POOL_NOT_FOUND";
      assert.ok(!d.ok && d.rejection.code === code);
    }
    if (command.type === "release" && command.reservationSeq <= retiredAt) {
      // (f) no reservation of a retired pool is ever released, even once re-created.
      assert.ok(!d.ok && d.rejection.code === "RESERVATION_NOT_FOUND");
    }
    if (d.ok) {
      for (const e of d.events) {
        log.push(e);
        state = evolve(state, e, state.version + 1);
        if (e.type === "retired") {
          retiredAt = state.version;
          firstSeqOf.clear();
        }
      }
    }
    if (command.type === "reserve" && d.ok) {
      assert.equal(d.reply.type, "reserved");
      if (d.reply.type !== "reserved") return;
      const original = firstSeqOf.get(command.requestId);
      if (original === undefined) {
        // (a) an accepted new reserve never oversells.
        assert.equal(d.events.length, 1);
        assert.equal(d.reply.replayed, false);
        assert.equal(d.reply.reservationSeq, state.version);
        assert.ok(state.spec !== undefined && state.reserved <= state.spec.capacity);
        // (e) …and comes before the window's end.
        assert.ok(state.spec.window === undefined || command.at < state.spec.window.endMs);
        firstSeqOf.set(command.requestId, {
          seq: d.reply.reservationSeq,
          units: command.units,
          callToken: command.callToken,
        });
        seqs.push(d.reply.reservationSeq);
      } else {
        // (b) a retry returns the original reservation and writes nothing; it is a
        // replay unless it carries the call token that made the reservation.
        assert.equal(d.events.length, 0);
        assert.equal(
          d.reply.replayed,
          !(command.callToken !== undefined && command.callToken === original.callToken),
        );
        assert.equal(d.reply.reservationSeq, original.seq);
        assert.equal(original.units, command.units);
        assert.equal(d.reply.secret, secretOf(command.requestId));
      }
    }
    if (
      command.type === "reserve" &&
      !firstSeqOf.has(command.requestId) &&
      state.spec?.window !== undefined &&
      !state.spec.closed &&
      command.at >= state.spec.window.endMs
    ) {
      // (e) a new reserve after the window's end is WINDOW_ENDED.
      assert.ok(!d.ok && d.rejection.code === "WINDOW_ENDED");
    }
    if (command.type === "release" && command.key.kind === "legacy" && state.spec !== undefined) {
      // (d) every reservation here has a secret: no legacy id matches any of them.
      assert.deepEqual(d, unknownAnswer);
    }
    if (
      command.type === "release" &&
      step.kind === "release" &&
      step.forge !== "none" &&
      state.spec !== undefined
    ) {
      // (d) a key that is not the holder's releases nothing and is answered exactly
      // as a reservation that does not exist.
      assert.deepEqual(d, unknownAnswer);
    }
    if (command.type === "reserve" && !d.ok && d.rejection.code === "REQUEST_ID_REUSED") {
      assert.notEqual(firstSeqOf.get(command.requestId)?.units, command.units);
    }
    if (command.type === "release" && d.ok && d.reply.type === "released") {
      // (c) a release that emits nothing is a repeat of an earlier release.
      assert.equal(d.events.length === 0, d.reply.alreadyReleased);
      if (d.reply.alreadyReleased) {
        assert.ok(state.released.has(command.reservationSeq));
        assert.ok(!state.active.has(command.reservationSeq));
      }
    }
    // (a) reserved is always the sum of the active reservations.
    let sum = 0;
    for (const r of state.active.values()) sum += r.units;
    assert.equal(state.reserved, sum);
    const view = poolView(state);
    if (view !== undefined) {
      assert.equal(view.overCommitted, view.reserved > view.capacity);
      assert.ok(view.available >= 0 && view.available <= view.capacity);
    }
  });
  return { state, log, seqs };
}

function fold(state: PoolState, events: readonly PoolEvent[]): PoolState {
  let s = state;
  for (const e of events) s = evolve(s, e, s.version + 1);
  return s;
}

describe("properties", () => {
  test("reserved never exceeds capacity at an accepted reserve and always equals the active sum", () => {
    fc.assert(
      fc.property(stepsArb, ([first, steps]) => {
        run(first, steps);
      }),
      { numRuns: 300 },
    );
  });

  test("every reserve retried with its request id returns the original seq and emits nothing", () => {
    fc.assert(
      fc.property(stepsArb, ([first, steps]) => {
        const { state } = run(first, steps);
        for (const [requestId, r] of state.byRequest) {
          const d = decide(state, reserve(r.units, requestId));
          assert.deepEqual(d, {
            ok: true,
            events: [],
            reply: {
              type: "reserved",
              reservationSeq: r.seq,
              units: r.units,
              replayed: true,
              secret: r.secret,
            },
          });
        }
      }),
      { numRuns: 200 },
    );
  });

  test("release is idempotent: the second release emits nothing and reports alreadyReleased", () => {
    fc.assert(
      fc.property(stepsArb, ([first, steps]) => {
        let { state } = run(first, steps);
        for (const { seq, requestId } of [...state.active.values()]) {
          const d1 = decide(state, release(seq, requestId));
          assert.ok(d1.ok && d1.events.length === 1);
          state = fold(state, d1.events);
          const d2 = decide(state, release(seq, requestId));
          assert.ok(d2.ok && d2.reply.type === "released");
          assert.equal(d2.events.length, 0);
          assert.equal(d2.reply.alreadyReleased, true);
        }
        assert.equal(state.reserved, 0);
      }),
      { numRuns: 200 },
    );
  });

  test("replaying the events, with or without a snapshot at any point, yields the live state", () => {
    fc.assert(
      fc.property(stepsArb, fc.nat(), ([first, steps], cutSeed) => {
        const { state, log } = run(first, steps);
        const live = toSnapshot(state);
        assert.deepEqual(toSnapshot(fold(initialState("ns/prop"), log)), live);
        const cut = cutSeed % (log.length + 1);
        const head = toSnapshot(fold(initialState("ns/prop"), log.slice(0, cut)));
        const restored = fromSnapshot(JSON.parse(JSON.stringify(head)));
        assert.deepEqual(toSnapshot(fold(restored, log.slice(cut))), live);
      }),
      { numRuns: 300 },
    );
  });

  test("decide never throws on a well-formed command", () => {
    const wideSpec: fc.Arbitrary<PoolSpec> = fc.record(
      {
        capacity: fc.integer({ min: 0, max: 2_147_483_647 }),
        labels: labelsArb,
        closed: fc.boolean(),
        generation: fc.nat(),
        window: fc
          .tuple(
            fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
            fc.integer({ min: 1, max: 2 ** 40 }),
          )
          .map(([startMs, len]) => ({ startMs, endMs: startMs + len })),
      },
      { requiredKeys: ["capacity", "labels", "closed", "generation"] },
    );
    const at = fc.double({ noNaN: true, noDefaultInfinity: true });
    const command: fc.Arbitrary<PoolCommand> = fc.oneof(
      fc.record({ type: fc.constant("configure" as const), spec: wideSpec, at }),
      fc.record({ type: fc.constant("retire" as const), at }),
      fc.record({
        type: fc.constant("reserve" as const),
        units: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        requestId: fc.string({ minLength: 1 }),
        secret: secretArb,
        at,
      }),
      fc.record({
        type: fc.constant("release" as const),
        reservationSeq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        key: fc.oneof(
          secretArb.map((secret): ReservationKey => ({ kind: "secret", secret })),
          fc.boolean().map((checksumValid): ReservationKey => ({ kind: "legacy", checksumValid })),
        ),
        at,
      }),
    );
    fc.assert(
      fc.property(stepsArb, fc.array(command, { maxLength: 20 }), ([first, steps], commands) => {
        let { state } = run(first, steps);
        for (const c of commands) {
          const d = decide(state, c);
          if (d.ok) state = fold(state, d.events);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("idempotency retention window", () => {
  const W = 1000;
  const withWindow = (fn: () => void) => {
    setIdempotencyRetentionMs(W);
    try {
      fn();
    } finally {
      setIdempotencyRetentionMs(DEFAULT_IDEMPOTENCY_RETENTION_MS);
    }
  };
  /** Decides and, when accepted, folds the events in. */
  const step = (state: PoolState, command: PoolCommand) => {
    const d = decide(state, command);
    let next = state;
    if (d.ok) for (const e of d.events) next = evolve(next, e, next.version + 1);
    return { state: next, decision: d };
  };

  test("defaults to 24 hours and refuses a window that is not a positive integer", () => {
    assert.equal(idempotencyRetentionMs(), 24 * 60 * 60 * 1000);
    assert.throws(() => setIdempotencyRetentionMs(0), {
      name: "RangeError",
      message: "idempotency retention must be a positive integer of ms, got 0",
    });
    assert.throws(() => setIdempotencyRetentionMs(1.5), RangeError);
  });

  test("a released reservation is forgotten by the first event after its window; an active one never", () =>
    withWindow(() => {
      let s = given(
        configured(),
        reserved("old", 1, 0),
        reserved("held", 1, 0),
        released(2, 1, 10),
      ).state;
      assert.equal(s.released.size, 1);
      s = step(s, reserve(1, "new", 10 + W)).state;
      assert.equal(s.released.size, 1, "inside the window (its end included)");
      s = step(s, reserve(1, "newer", 11 + W)).state;
      assert.equal(s.released.size, 0);
      assert.equal(s.byRequest.has("old"), false);
      assert.equal(s.byRequest.has("held"), true, "active: remembered whatever its age");
      // Its id now matches nothing, and nothing is released twice.
      const again = decide(s, release(2, "old", 12 + W));
      assert.ok(!again.ok && again.rejection.code === "RESERVATION_NOT_FOUND");
      // Its request id is new again: a new reservation.
      const d = step(s, reserve(1, "old", 12 + W)).decision;
      assert.ok(
        d.ok && d.reply.type === "reserved" && !d.reply.replayed && d.reply.reservationSeq === 7,
      );
    }));

  const op = fc.oneof(
    fc.record({
      kind: fc.constant("reserve" as const),
      id: fc.integer({ min: 0, max: 8 }),
      units: fc.integer({ min: 1, max: 3 }),
    }),
    fc.record({ kind: fc.constant("release" as const), id: fc.integer({ min: 0, max: 8 }) }),
    fc.record({ kind: fc.constant("snapshot" as const) }),
  );
  const ops = fc.array(fc.tuple(op, fc.integer({ min: 0, max: 400 })), { maxLength: 80 });

  test("within the window a retried request id gets the same answer (snapshots in between too)", () =>
    withWindow(() => {
      fc.assert(
        fc.property(ops, (list) => {
          let s = given(configured({ capacity: 1000 })).state;
          let now = 0;
          /** First answer per request id, and when its reservation was released. */
          const first = new Map<string, { seq: number; units: number; releasedAt?: number }>();
          const bySeq = new Map<number, string>();
          for (const [o, gap] of list) {
            now += gap;
            if (o.kind === "snapshot") {
              s = fromSnapshot(JSON.parse(JSON.stringify(toSnapshot(s))));
              continue;
            }
            const rid = `r${o.id}`;
            const seen = first.get(rid);
            if (o.kind === "reserve") {
              const { state, decision } = step(s, reserve(seen?.units ?? o.units, rid, now));
              s = state;
              assert.ok(decision.ok && decision.reply.type === "reserved");
              const inWindow =
                seen !== undefined && (seen.releasedAt === undefined || now - seen.releasedAt <= W);
              if (inWindow) {
                assert.equal(decision.reply.reservationSeq, seen.seq, `retry of ${rid} at ${now}`);
                assert.deepEqual(decision.events, []);
              } else if (decision.events.length > 0) {
                first.set(rid, {
                  seq: decision.reply.reservationSeq,
                  units: seen?.units ?? o.units,
                });
                bySeq.set(decision.reply.reservationSeq, rid);
              }
            } else if (seen !== undefined) {
              const { state, decision } = step(s, release(seen.seq, rid, now));
              s = state;
              const inWindow = seen.releasedAt === undefined || now - seen.releasedAt <= W;
              if (inWindow) {
                assert.ok(decision.ok && decision.reply.type === "released");
                assert.equal(decision.reply.alreadyReleased, seen.releasedAt !== undefined);
                if (seen.releasedAt === undefined) seen.releasedAt = now;
              }
            }
          }
        }),
        { numRuns: 300 },
      );
    }));

  test("a release of a released reservation is never counted twice, whatever its age", () =>
    withWindow(() => {
      fc.assert(
        fc.property(
          ops,
          fc.array(fc.integer({ min: 1, max: 80 }), { maxLength: 40 }),
          (list, seqs) => {
            let s = given(configured({ capacity: 1000 })).state;
            let now = 0;
            const made = new Map<number, { units: number; rid: string }>();
            const released = new Set<number>();
            const check = () => {
              let held = 0;
              for (const [seq, r] of made) if (!released.has(seq)) held += r.units;
              assert.equal(s.reserved, held);
              assert.equal(s.active.size, made.size - released.size);
            };
            const releaseSeq = (seq: number) => {
              const r = made.get(seq);
              const { state, decision } = step(s, release(seq, r?.rid ?? "nobody", now));
              s = state;
              if (decision.ok && decision.events.length > 0) {
                assert.ok(made.has(seq) && !released.has(seq), `seq ${seq} released twice`);
                released.add(seq);
              }
            };
            for (const [i, [o, gap]] of list.entries()) {
              now += gap;
              if (o.kind === "snapshot") {
                s = fromSnapshot(JSON.parse(JSON.stringify(toSnapshot(s))));
              } else if (o.kind === "reserve") {
                const rid = `r${o.id}-${i}`;
                const { state, decision } = step(s, reserve(o.units, rid, now));
                s = state;
                if (
                  decision.ok &&
                  decision.reply.type === "reserved" &&
                  decision.events.length > 0
                ) {
                  made.set(decision.reply.reservationSeq, { units: o.units, rid });
                }
              } else {
                releaseSeq([...made.keys()][o.id % Math.max(1, made.size)] ?? 1);
              }
              check();
            }
            for (const seq of seqs) {
              now += 600;
              releaseSeq(seq);
              check();
            }
          },
        ),
        { numRuns: 300 },
      );
    }));

  test("memory stays bounded: only reservations released inside the window are kept", () =>
    withWindow(() => {
      let s = given(configured({ capacity: 10 })).state;
      for (let i = 0; i < 10_000; i++) {
        const at = i * 10;
        const r = step(s, reserve(1, `r${i}`, at));
        s = r.state;
        assert.ok(r.decision.ok && r.decision.reply.type === "reserved");
        s = step(s, release(r.decision.reply.reservationSeq, `r${i}`, at)).state;
      }
      // One release every 10 ms, a 1,000 ms window: about 100 remembered, not 10,000.
      assert.ok(s.released.size <= W / 10 + 2, `${s.released.size} released kept`);
      assert.ok(s.byRequest.size <= W / 10 + 2);
      assert.ok(JSON.stringify(toSnapshot(s)).length < 20_000);
    }));

  test("a version-2 snapshot holding every released reservation ever still loads, and shrinks", () =>
    withWindow(() => {
      const v2 = {
        v: 2,
        pool: TEST_POOL,
        version: 201,
        spec: { capacity: 9, labels: {}, closed: false, generation: 1 },
        reserved: 0,
        active: [],
        released: Array.from({ length: 100 }, (_, i) => [
          2 + 2 * i,
          1,
          `r${i}`,
          secretOf(`r${i}`),
          null,
        ]),
      };
      let s = fromSnapshot(v2);
      assert.equal(s.released.size, 100);
      // Replayed within the window that starts at the next event.
      s = step(s, reserve(1, "next", 5000)).state;
      const replay = decide(s, reserve(1, "r7", 5000 + W));
      assert.ok(replay.ok && replay.events.length === 0);
      s = step(s, reserve(1, "later", 5001 + W)).state;
      assert.equal(s.released.size, 0);
      assert.equal(toSnapshot(s).v, 3);
    }));
});
