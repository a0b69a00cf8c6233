/**
 * The pool entity: a pure decider. `decide` turns a command into events or a
 * rejection; `evolve` folds one event into the state. No IO, no clock, no
 * randomness: time and random values (a reservation's secret) arrive in the command.
 *
 * Events are the storage format. Change them additively only: new optional
 * fields or new event types, never a renamed or re-typed field.
 *
 * Malformed input (units not a positive integer, a NaN timestamp, an invalid label
 * key) is a programming error at this layer — the gateway validates requests
 * first — so `decide` throws `InvalidCommandError` for it rather than answering
 * with a `Rejection`. Every well-formed command gets a `Decision`.
 */

import {
  labelKeyProblem,
  labelValueProblem,
  MAX_CALL_TOKEN_LENGTH,
  MAX_CAPACITY,
} from "@berth/proto";
import { BoundedInterner } from "./interning.js";
import {
  CorruptSnapshotError,
  EventSequenceError,
  InvalidCommandError,
  InvalidEventError,
} from "./pool-errors.js";

export {
  CorruptSnapshotError,
  EventSequenceError,
  InvalidCommandError,
  InvalidEventError,
} from "./pool-errors.js";

/** A half-open time window [startMs, endMs) in Unix epoch milliseconds. */
export interface TimeWindowMs {
  readonly startMs: number;
  readonly endMs: number;
}

/** The desired state of a pool, from its CapacityPool resource. */
export interface PoolSpec {
  /** 0 to 2,147,483,647. */
  readonly capacity: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly window?: TimeWindowMs;
  readonly closed: boolean;
  /** metadata.generation of the resource (0 if none). */
  readonly generation: number;
}

/** Characters of a reservation secret (128 random bits in unpadded base64url). */
export const RESERVATION_SECRET_LENGTH = 22;

/**
 * What a release presents to prove it was given the reservation's id:
 * - `secret`: the secret of a version-2 id; matches only a reservation with that secret.
 * - `legacy`: a version-1 id (no secret). It matches only a reservation made before
 *   reservations had secrets, and only when its checksum was valid.
 */
export type ReservationKey =
  | { readonly kind: "secret"; readonly secret: string }
  | { readonly kind: "legacy"; readonly checksumValid: boolean };

export type PoolCommand =
  | { readonly type: "configure"; readonly spec: PoolSpec; readonly at: number }
  /** Its CapacityPool was deleted: retire the pool (see {@link decide}). */
  | { readonly type: "retire"; readonly at: number }
  | {
      readonly type: "reserve";
      readonly units: number;
      readonly requestId: string;
      /**
       * Random secret the reservation gets if this command makes it
       * ({@link RESERVATION_SECRET_LENGTH} base64url characters); unused on a replay.
       */
      readonly secret: string;
      /**
       * The caller's token for one client call, the same on each of its internal
       * retries; a replay carrying the token that made the reservation answers
       * `replayed: false` (the client has not had an answer yet). Absent: no token.
       */
      readonly callToken?: string;
      readonly at: number;
    }
  | {
      readonly type: "release";
      readonly reservationSeq: number;
      readonly key: ReservationKey;
      readonly at: number;
    };

/**
 * Journal event. A reservation is named by the seq of its `reserved` event.
 * Format history (additive): v1 `reserved` had no `secret`/`callToken`; events
 * written since always have `secret`, and `callToken` when the caller sent one.
 * `retired` was added later (builds before it cannot load a pool that has one).
 */
export type PoolEvent =
  | { readonly type: "configured"; readonly spec: PoolSpec; readonly at: number }
  /**
   * The pool's CapacityPool was deleted. Folding it forgets the spec and every
   * reservation (the journal keeps them): the pool no longer exists, and a later
   * `configured` starts a new pool from nothing reserved.
   */
  | { readonly type: "retired"; readonly at: number }
  | {
      readonly type: "reserved";
      readonly requestId: string;
      readonly units: number;
      readonly at: number;
      /** The reservation's secret; absent on reservations made before secrets existed. */
      readonly secret?: string;
      /** The call token of the command that made it, when it had one. */
      readonly callToken?: string;
    }
  | {
      readonly type: "released";
      readonly reservationSeq: number;
      readonly units: number;
      readonly at: number;
    };

/** One reservation, named by the journal seq of its `reserved` event. */
export interface Reservation {
  readonly seq: number;
  readonly units: number;
  readonly requestId: string;
  /** Its secret; undefined for a reservation made before secrets existed (legacy). */
  readonly secret: string | undefined;
  /** The call token of the command that made it, if any. */
  readonly callToken: string | undefined;
  /**
   * When it was released (the `released` event's `at`); undefined while active, and
   * on a released reservation loaded from a snapshot older than this field (its
   * retention then starts at the next event).
   */
  readonly releasedAt?: number | undefined;
}

/**
 * How long a released reservation — its request id and its id — is remembered after
 * its release, in ms, unless {@link setIdempotencyRetentionMs} says otherwise: 24 h,
 * as payment APIs keep idempotency keys.
 */
export const DEFAULT_IDEMPOTENCY_RETENTION_MS = 24 * 60 * 60 * 1000;

let retentionMs = DEFAULT_IDEMPOTENCY_RETENTION_MS;

/**
 * Sets the idempotency retention window of this process (the worker's
 * `--idempotency-retention` flag): a released reservation is forgotten once an event
 * of its pool happens more than `ms` after its release. Within the window a retried
 * request id replays and a repeated release answers `alreadyReleased`; after it, the
 * request id is new again and a release of the id answers RESERVATION_NOT_FOUND (it
 * is not active, so it can never be released twice). Active reservations are never
 * forgotten. Configuration, not state: call once at start-up, before any pool loads.
 * @throws RangeError unless `ms` is a positive safe integer
 */
export function setIdempotencyRetentionMs(ms: number): void {
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new RangeError(`idempotency retention must be a positive integer of ms, got ${ms}`);
  }
  retentionMs = ms;
}

/** The idempotency retention window in force, in ms. */
export function idempotencyRetentionMs(): number {
  return retentionMs;
}

/** In-memory state of one pool. */
export interface PoolState {
  /** Pool id "<namespace>/<name>". */
  readonly pool: string;
  /** Seq of the last applied event; 0 before the first. */
  readonly version: number;
  /**
   * Undefined until the pool is first configured, and again once it is retired:
   * such a pool does not exist.
   */
  readonly spec: PoolSpec | undefined;
  /**
   * True from a `retired` event until the next `configured`: the pool existed and
   * was retired (its CapacityPool deleted). `spec` is then undefined and no
   * reservation is held or remembered.
   */
  readonly retired: boolean;
  /** Sum of units of active reservations. May exceed capacity after a capacity cut. */
  readonly reserved: number;
  /** Active (not released) reservations by seq. */
  readonly active: ReadonlyMap<number, Reservation>;
  /**
   * Active reservations and those released within the retention window, by request
   * id (idempotency).
   */
  readonly byRequest: ReadonlyMap<string, Reservation>;
  /**
   * Reservations released within the retention window, by seq, in release order, so
   * a repeated release is recognised.
   */
  readonly released: ReadonlyMap<number, Reservation>;
}

/** Why a command was refused: an answer, not an exception. */
export type Rejection =
  | { readonly code: "POOL_NOT_FOUND"; readonly message: string }
  | { readonly code: "POOL_CLOSED"; readonly message: string }
  | { readonly code: "WINDOW_ENDED"; readonly message: string; readonly windowEndMs: number }
  | { readonly code: "INSUFFICIENT_CAPACITY"; readonly message: string; readonly available: number }
  | { readonly code: "RESERVATION_NOT_FOUND"; readonly message: string }
  | { readonly code: "REQUEST_ID_REUSED"; readonly message: string };

export type Reply =
  | { readonly type: "configured"; readonly changed: boolean }
  | {
      readonly type: "reserved";
      readonly reservationSeq: number;
      readonly units: number;
      readonly replayed: boolean;
      /** The reservation's secret (undefined: a legacy reservation, whose id has none). */
      readonly secret: string | undefined;
    }
  | {
      readonly type: "released";
      readonly reservationSeq: number;
      readonly units: number;
      readonly alreadyReleased: boolean;
    };

export type Decision =
  | { readonly ok: true; readonly events: readonly PoolEvent[]; readonly reply: Reply }
  | { readonly ok: false; readonly rejection: Rejection };

/**
 * The Map every state without entries shares in place of an empty one of its own: an
 * idle pool holds no reservation, and three private empty Maps would be most of its
 * memory. It is immutable (its mutators throw); evolve swaps it for a private Map
 * before its first write, in {@link writable}, the one place a state's Maps are made
 * writable.
 */
class SharedEmptyMap<K, V> extends Map<K, V> {
  override set(): this {
    throw new TypeError("the shared empty Map of pool states is immutable");
  }
  override delete(): boolean {
    throw new TypeError("the shared empty Map of pool states is immutable");
  }
  override clear(): void {
    throw new TypeError("the shared empty Map of pool states is immutable");
  }
}

const EMPTY: ReadonlyMap<never, never> = Object.freeze(new SharedEmptyMap<never, never>());

/** `map`, or the shared empty Map when it has no entries. */
function compact<K, V>(map: Map<K, V>): ReadonlyMap<K, V> {
  return map.size === 0 ? EMPTY : map;
}

/** The first state of every pool: version 0, not configured (so it does not exist yet). */
export function initialState(pool: string): PoolState {
  return {
    pool,
    version: 0,
    spec: undefined,
    retired: false,
    reserved: 0,
    active: EMPTY,
    byRequest: EMPTY,
    released: EMPTY,
  };
}

/**
 * Decides a command against a state: the events to append and the reply, or a
 * rejection. Pure; never mutates `state`. Emits at most one event, whose seq is
 * `state.version + 1`.
 *
 * - configure: emits `configured` when any field of the spec differs, generation
 *   included (so the journaled spec always carries the generation that status
 *   reports as observedGeneration); `changed` says whether an event was emitted.
 * - reserve: a seen request id replays the original reservation (even if since
 *   released, the pool since closed or its window ended) with no events, and
 *   `replayed: false` only when the command carries the call token that made it (an
 *   internal retry of the very call that made it); a different unit count under the
 *   same id is REQUEST_ID_REUSED. Otherwise POOL_CLOSED; WINDOW_ENDED when the pool
 *   has a window and `at >= window.endMs` (before the start is allowed); or
 *   INSUFFICIENT_CAPACITY unless `reserved + units <= capacity`. A new reservation
 *   keeps the command's secret and call token in its event.
 * - release: allowed on a closed pool and after the window. The key must match the
 *   reservation at `reservationSeq` (secrets compared in constant time); a key that
 *   matches nothing answers RESERVATION_NOT_FOUND, the same rejection, word for word,
 *   as a seq with no reservation, so an answer never tells a wrong secret from an
 *   unknown reservation. A released reservation answers `alreadyReleased`.
 * - retire (the CapacityPool was deleted): emits `retired` when the pool exists;
 *   a pool never configured, or already retired, writes nothing. Replies
 *   `configured` with `changed`. Afterwards the pool does not exist: reserve answers
 *   POOL_NOT_FOUND (no replay of its old request ids either) and release answers
 *   RESERVATION_NOT_FOUND for every id (its reservations went with it). A later
 *   configure makes a new pool: nothing reserved, no old reservation releasable, no
 *   old request id replayed; seqs keep counting up, so no new id equals an old one.
 *
 * @throws InvalidCommandError for a malformed command (a caller bug)
 */
export function decide(state: PoolState, command: PoolCommand): Decision {
  checkCommand(state.pool, command);
  switch (command.type) {
    case "configure":
      return decideConfigure(state, command.spec, command.at);
    case "retire":
      return state.spec === undefined
        ? { ok: true, events: [], reply: { type: "configured", changed: false } }
        : {
            ok: true,
            events: [{ type: "retired", at: command.at }],
            reply: { type: "configured", changed: true },
          };
    case "reserve":
      return decideReserve(state, command);
    case "release":
      return decideRelease(state, command.reservationSeq, command.key, command.at);
  }
}

function decideConfigure(state: PoolState, rawSpec: PoolSpec, at: number): Decision {
  const spec = normalizeSpec(rawSpec);
  if (state.spec !== undefined && specEquals(state.spec, spec)) {
    return { ok: true, events: [], reply: { type: "configured", changed: false } };
  }
  return {
    ok: true,
    events: [{ type: "configured", spec, at }],
    reply: { type: "configured", changed: true },
  };
}

function decideReserve(
  state: PoolState,
  command: Extract<PoolCommand, { type: "reserve" }>,
): Decision {
  const { units, requestId, at, callToken } = command;
  const spec = state.spec;
  if (spec === undefined) return notFound(state);
  const previous = state.byRequest.get(requestId);
  if (previous !== undefined) {
    if (previous.units !== units) {
      return reject({
        code: "REQUEST_ID_REUSED",
        message: `pool ${state.pool}: request id ${JSON.stringify(requestId)} was already used for a reservation of ${previous.units} units (seq ${previous.seq}); this request asks for ${units}`,
      });
    }
    const sameCall = callToken !== undefined && previous.callToken === callToken;
    return {
      ok: true,
      events: [],
      reply: {
        type: "reserved",
        reservationSeq: previous.seq,
        units,
        replayed: !sameCall,
        secret: previous.secret,
      },
    };
  }
  if (spec.closed) {
    return reject({
      code: "POOL_CLOSED",
      message: `pool ${state.pool} is closed to new reservations`,
    });
  }
  if (spec.window !== undefined && at >= spec.window.endMs) {
    return reject({
      code: "WINDOW_ENDED",
      message: `pool ${state.pool} takes no new reservations: its window ended at ${isoOf(spec.window.endMs)}`,
      windowEndMs: spec.window.endMs,
    });
  }
  if (state.reserved + units > spec.capacity) {
    const available = availableOf(spec, state.reserved);
    const over =
      state.reserved > spec.capacity
        ? ` (over-committed: ${state.reserved} reserved of capacity ${spec.capacity})`
        : "";
    return reject({
      code: "INSUFFICIENT_CAPACITY",
      message: `pool ${state.pool} has ${available} of ${spec.capacity} units available; ${units} requested${over}`,
      available,
    });
  }
  const event: PoolEvent =
    callToken === undefined
      ? { type: "reserved", requestId, units, at, secret: command.secret }
      : { type: "reserved", requestId, units, at, secret: command.secret, callToken };
  return {
    ok: true,
    events: [event],
    reply: {
      type: "reserved",
      reservationSeq: state.version + 1,
      units,
      replayed: false,
      secret: command.secret,
    },
  };
}

function decideRelease(
  state: PoolState,
  reservationSeq: number,
  key: ReservationKey,
  at: number,
): Decision {
  // A retired pool's reservations are gone: fall through to RESERVATION_NOT_FOUND.
  if (state.spec === undefined && !state.retired) return notFound(state);
  const active = state.active.get(reservationSeq);
  if (active !== undefined && keyMatches(active, key)) {
    return {
      ok: true,
      events: [{ type: "released", reservationSeq, units: active.units, at }],
      reply: { type: "released", reservationSeq, units: active.units, alreadyReleased: false },
    };
  }
  const released = state.released.get(reservationSeq);
  if (released !== undefined && keyMatches(released, key)) {
    return {
      ok: true,
      events: [],
      reply: { type: "released", reservationSeq, units: released.units, alreadyReleased: true },
    };
  }
  // One answer for "no such seq" and "wrong key": nothing here may help a guesser.
  return reject({
    code: "RESERVATION_NOT_FOUND",
    message: `pool ${state.pool} has no reservation with this id`,
  });
}

function keyMatches(reservation: Reservation, key: ReservationKey): boolean {
  if (key.kind === "legacy") return reservation.secret === undefined && key.checksumValid;
  return reservation.secret !== undefined && constantTimeEqual(reservation.secret, key.secret);
}

/**
 * String equality whose running time depends only on the lengths, not on where the
 * strings differ (no early exit), so response times do not reveal how much of a
 * guessed secret is right. Pure (the domain may not use node:crypto's timingSafeEqual).
 */
export function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0);
  return diff === 0;
}

function isoOf(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

function reject(rejection: Rejection): Decision {
  return { ok: false, rejection };
}

function notFound(state: PoolState): Decision {
  return reject({
    code: "POOL_NOT_FOUND",
    message: state.retired
      ? `pool ${state.pool} does not exist (it was retired: its CapacityPool was deleted)`
      : `pool ${state.pool} does not exist (it has never been configured)`,
  });
}

function availableOf(spec: PoolSpec, reserved: number): number {
  return spec.closed ? 0 : Math.max(0, spec.capacity - reserved);
}

/**
 * Folds one event, stored at `seq`, into the state. O(1) for reservation events:
 * it mutates and reuses the input state's Maps, so the input state is CONSUMED —
 * do not read it (or decide against it) afterwards. Keep a `cloneState` copy if
 * you may need to roll back. Maps shared by states without entries are never
 * written: the new state gets Maps of its own instead (copy-on-write).
 *
 * @throws EventSequenceError when `seq !== state.version + 1`
 * @throws InvalidEventError when the event is malformed or cannot apply to the state
 */
export function evolve(state: PoolState, event: PoolEvent, seq: number): PoolState {
  if (seq !== state.version + 1) throw new EventSequenceError(state.pool, state.version + 1, seq);
  const shape = eventProblem(event);
  if (shape !== undefined) throw new InvalidEventError(state.pool, seq, shape);
  const invalid = (problem: string) => new InvalidEventError(state.pool, seq, problem);
  switch (event.type) {
    case "configured":
      return { ...state, version: seq, spec: normalizeSpec(event.spec), retired: false };
    case "retired":
      if (state.spec === undefined) throw invalid("retired a pool that does not exist");
      return { ...initialState(state.pool), version: seq, retired: true };
    case "reserved": {
      if (state.spec === undefined) throw invalid("reserved before the pool was configured");
      const earlier = state.byRequest.get(event.requestId);
      if (earlier !== undefined && state.active.has(earlier.seq)) {
        throw invalid(
          `request id ${JSON.stringify(event.requestId)} already reserved at seq ${earlier.seq}`,
        );
      }
      const next = writable(state, seq);
      forgetExpired(next, event.at);
      // A released reservation's request id may be reused once its window ended; one
      // still remembered here (a longer window now than when this was decided) yields.
      if (earlier !== undefined) next.released.delete(earlier.seq);
      const reservation: Reservation = {
        seq,
        units: event.units,
        requestId: event.requestId,
        secret: event.secret,
        callToken: event.callToken,
      };
      next.active.set(seq, reservation);
      next.byRequest.set(event.requestId, reservation);
      next.reserved += event.units;
      return next;
    }
    case "released": {
      const reservation = state.active.get(event.reservationSeq);
      if (reservation === undefined) {
        throw invalid(`released reservation ${event.reservationSeq}, which is not active`);
      }
      if (reservation.units !== event.units) {
        throw invalid(
          `released ${event.units} units of reservation ${event.reservationSeq}, which holds ${reservation.units}`,
        );
      }
      const next = writable(state, seq);
      next.active.delete(event.reservationSeq);
      forgetExpired(next, event.at);
      next.released.set(event.reservationSeq, { ...reservation, releasedAt: event.at });
      next.reserved -= reservation.units;
      return next;
    }
  }
}

/** A state whose Maps evolve may write: none of them is the shared empty Map. */
interface WritableState extends PoolState {
  reserved: number;
  readonly active: Map<number, Reservation>;
  readonly byRequest: Map<string, Reservation>;
  readonly released: Map<number, Reservation>;
}

/**
 * The next state after `state`, at `version`, with Maps it may write: `state`'s own
 * Maps (consumed, as evolve documents), and a new Map in place of each shared empty one
 * (copy-on-write). The only place a state's Maps become writable, so the shared empty
 * Map is never written to.
 */
function writable(state: PoolState, version: number): WritableState {
  return {
    ...state,
    version,
    active: own(state.active),
    byRequest: own(state.byRequest),
    released: own(state.released),
  };
}

// A state's Maps are created only here and in initialState, fromSnapshot and
// cloneState: each is either the shared empty Map or a private Map evolve owns.
function own<K, V>(map: ReadonlyMap<K, V>): Map<K, V> {
  return map === EMPTY ? new Map() : (map as Map<K, V>);
}

/**
 * Forgets released reservations whose retention window ended before `now` (an event's
 * time), oldest release first; stops at the first one still inside it. Amortised O(1)
 * per event. A reservation whose release time is unknown (loaded from an older
 * snapshot) starts its window now.
 */
function forgetExpired(state: WritableState, now: number): void {
  const { released, byRequest } = state;
  for (const [seq, r] of released) {
    if (r.releasedAt === undefined) {
      released.set(seq, { ...r, releasedAt: now });
      continue;
    }
    if (now - r.releasedAt <= retentionMs) return;
    released.delete(seq);
    if (byRequest.get(r.requestId)?.seq === seq) byRequest.delete(r.requestId);
  }
}

/**
 * A deep copy of a state that shares no mutable structure with it: what a caller
 * keeps to roll back to when events decided against a pending state fail to append.
 * O(reservations ever made).
 */
export function cloneState(state: PoolState): PoolState {
  return {
    ...state,
    active: compact(new Map(state.active)),
    byRequest: compact(new Map(state.byRequest)),
    released: compact(new Map(state.released)),
  };
}

/**
 * Validates a stored event (JSON from the journal) and returns it typed, with
 * unknown fields dropped.
 * @throws InvalidEventError when it is not a valid event
 */
export function parsePoolEvent(pool: string, seq: number, json: unknown): PoolEvent {
  const problem = eventProblem(json);
  if (problem !== undefined) throw new InvalidEventError(pool, seq, problem);
  const e = json as PoolEvent;
  switch (e.type) {
    case "configured":
      return { type: "configured", spec: normalizeSpec(e.spec), at: e.at };
    case "retired":
      return { type: "retired", at: e.at };
    case "reserved": {
      const base = { type: "reserved", requestId: e.requestId, units: e.units, at: e.at } as const;
      return {
        ...base,
        ...(e.secret === undefined ? {} : { secret: e.secret }),
        ...(e.callToken === undefined ? {} : { callToken: e.callToken }),
      };
    }
    case "released":
      return { type: "released", reservationSeq: e.reservationSeq, units: e.units, at: e.at };
  }
}

/**
 * The public counters of a configured pool: what gossip and status report. A retired
 * pool has a tombstone view (`retired`, everything else empty) so gossip can carry
 * its retirement; it answers as a pool that does not exist.
 */
export interface PoolView {
  readonly pool: string;
  /** Journal seq of the last event: the version of these counters. */
  readonly version: number;
  readonly capacity: number;
  /** Sum of active reservations; may exceed capacity after a capacity cut. */
  readonly reserved: number;
  /** capacity − reserved, floored at 0; 0 when closed. */
  readonly available: number;
  readonly closed: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly window: TimeWindowMs | undefined;
  /** metadata.generation of the last applied spec (status.observedGeneration). */
  readonly generation: number;
  /** Number of active (unreleased) reservations. */
  readonly activeReservations: number;
  /** reserved > capacity: a capacity cut left more reserved than there is. */
  readonly overCommitted: boolean;
  /** The pool was retired (its CapacityPool deleted): it does not exist. */
  readonly retired: boolean;
}

/**
 * The public counters of a pool, or undefined when it has never been configured; a
 * tombstone (`retired: true`, capacity 0, open, nothing reserved) once it is retired.
 */
export function poolView(state: PoolState): PoolView | undefined {
  const spec = state.spec;
  if (spec === undefined) {
    if (!state.retired) return undefined;
    return {
      pool: state.pool,
      version: state.version,
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
    };
  }
  return {
    pool: state.pool,
    version: state.version,
    capacity: spec.capacity,
    reserved: state.reserved,
    available: availableOf(spec, state.reserved),
    closed: spec.closed,
    labels: spec.labels,
    window: spec.window,
    generation: spec.generation,
    activeReservations: state.active.size,
    overCommitted: state.reserved > spec.capacity,
    retired: false,
  };
}

/**
 * A reservation in a snapshot: `[seq, units, requestId, secret, callToken]`, null for
 * an absent secret (legacy reservation) or call token; a released one (version 3)
 * adds `releasedAt` (null: unknown). Version-1 snapshots hold only the first three
 * (they predate secrets); they are still read.
 */
export type SnapshotReservation =
  | readonly [
      seq: number,
      units: number,
      requestId: string,
      secret: string | null,
      callToken: string | null,
    ]
  | readonly [
      seq: number,
      units: number,
      requestId: string,
      secret: string | null,
      callToken: string | null,
      releasedAt: number | null,
    ];

/**
 * Snapshot format version 3: plain JSON. `spec` is null before the first
 * configure, and while retired. Active reservations are listed in ascending seq;
 * released ones (only those inside the idempotency retention window) in release
 * order, each with its release time; labels in key order, so equal states give
 * byte-identical snapshots. Version 2 listed every released reservation ever, in
 * ascending seq and without release time; version 1 also lacked secrets and call
 * tokens (`[seq, units, requestId]`). Both are still read: their released
 * reservations start their retention window at the next event. `retired` is present
 * only when true.
 */
export interface PoolSnapshot {
  readonly v: 3;
  readonly pool: string;
  readonly version: number;
  readonly spec: PoolSpec | null;
  /** Present (true) only while the pool is retired: `spec` null, nothing reserved. */
  readonly retired?: true;
  /** Sum of the active reservations' units (checked on load). */
  readonly reserved: number;
  readonly active: readonly SnapshotReservation[];
  readonly released: readonly SnapshotReservation[];
}

/** The state as a canonical, JSON-serialisable snapshot. Does not consume the state. */
export function toSnapshot(state: PoolState): PoolSnapshot {
  const active = [...state.active.values()]
    .sort((a, b) => a.seq - b.seq)
    .map(
      (r): SnapshotReservation => [
        r.seq,
        r.units,
        r.requestId,
        r.secret ?? null,
        r.callToken ?? null,
      ],
    );
  // Release order, which forgetting follows.
  const released = [...state.released.values()].map(
    (r): SnapshotReservation => [
      r.seq,
      r.units,
      r.requestId,
      r.secret ?? null,
      r.callToken ?? null,
      r.releasedAt ?? null,
    ],
  );
  return {
    v: 3,
    pool: state.pool,
    version: state.version,
    spec: state.spec === undefined ? null : normalizeSpec(state.spec),
    ...(state.retired ? { retired: true as const } : {}),
    reserved: state.reserved,
    active,
    released,
  };
}

/**
 * Rebuilds a state from a snapshot (version 3, or versions 1 and 2 written by
 * earlier builds) as parsed from JSON, validating all of it:
 * shape, types, ranges, unique seqs ≤ version (ascending, but for version 3's
 * released ones, which are in release order), unique request ids, and that
 * `reserved` is the sum of the active reservations. A version 1 or 2 snapshot's
 * released reservations get no release time: the next event starts their window.
 * @throws CorruptSnapshotError naming the first offending field
 */
export function fromSnapshot(json: unknown): PoolState {
  const corrupt = (path: string, problem: string) => new CorruptSnapshotError(path, problem);
  if (!isRecord(json)) throw corrupt("(root)", `must be an object, got ${typeName(json)}`);
  if (json.v !== 1 && json.v !== 2 && json.v !== 3) {
    throw corrupt("v", `must be 1, 2 or 3 (the known formats), got ${show(json.v)}`);
  }
  const v = json.v;
  const { pool, version, reserved } = json;
  if (typeof pool !== "string" || pool.length === 0) {
    throw corrupt("pool", `must be a non-empty string, got ${show(pool)}`);
  }
  if (!isNonNegativeInt(version)) {
    throw corrupt("version", `must be a non-negative integer, got ${show(version)}`);
  }
  let spec: PoolSpec | undefined;
  if (json.spec !== null) {
    const p = specProblem(json.spec);
    if (p !== undefined) throw corrupt(`spec${p.path}`, p.problem);
    spec = normalizeSpec(json.spec as PoolSpec);
  }
  if (json.retired !== undefined && json.retired !== true) {
    throw corrupt("retired", `must be true when present, got ${show(json.retired)}`);
  }
  const retired = json.retired === true;
  if (retired) {
    // Retired: its spec and reservations are gone, and it existed (version > 0).
    if (spec !== undefined) throw corrupt("spec", "is set on a retired pool");
    if (version === 0) throw corrupt("retired", "is true at version 0");
  } else if ((spec === undefined) !== (version === 0)) {
    // The first event of every pool is `configured`: no spec means no events at all.
    throw corrupt("spec", `is ${spec === undefined ? "null" : "set"} at version ${version}`);
  }
  if (!isNonNegativeInt(reserved)) {
    throw corrupt("reserved", `must be a non-negative integer, got ${show(reserved)}`);
  }
  const active = new Map<number, Reservation>();
  const released = new Map<number, Reservation>();
  const byRequest = new Map<string, Reservation>();
  for (const [name, target] of [
    ["active", active],
    ["released", released],
  ] as const) {
    const list = json[name];
    if (!Array.isArray(list)) throw corrupt(name, `must be an array, got ${typeName(list)}`);
    const withReleasedAt = v === 3 && name === "released";
    const entryLength = v === 1 ? 3 : withReleasedAt ? 6 : 5;
    const entryShape =
      v === 1
        ? "[seq, units, requestId]"
        : withReleasedAt
          ? "[seq, units, requestId, secret, callToken, releasedAt]"
          : "[seq, units, requestId, secret, callToken]";
    let lastSeq = 0;
    list.forEach((item: unknown, i) => {
      const path = `${name}[${i}]`;
      if (!Array.isArray(item) || item.length !== entryLength) {
        throw corrupt(path, `must be ${entryShape}, got ${show(item)}`);
      }
      const [seq, units, requestId, secret = null, callToken = null, releasedAt = null] =
        item as unknown[];
      if (!isPositiveInt(seq) || seq > version) {
        throw corrupt(`${path}[0]`, `must be a seq in 1..${version}, got ${show(seq)}`);
      }
      // Released reservations of version 3 are in release order, not seq order.
      if (withReleasedAt) {
        if (target.has(seq)) throw corrupt(`${path}[0]`, `seq ${seq} is listed twice`);
      } else if (seq <= lastSeq) {
        throw corrupt(`${path}[0]`, `seq ${seq} is not above ${lastSeq}`);
      }
      lastSeq = seq;
      if (releasedAt !== null && !Number.isFinite(releasedAt)) {
        throw corrupt(`${path}[5]`, `must be a finite number or null, got ${show(releasedAt)}`);
      }
      if (!isPositiveInt(units)) {
        throw corrupt(`${path}[1]`, `must be a positive integer, got ${show(units)}`);
      }
      if (typeof requestId !== "string" || requestId.length === 0) {
        throw corrupt(`${path}[2]`, `must be a non-empty string, got ${show(requestId)}`);
      }
      if (secret !== null && !isSecret(secret)) throw corrupt(`${path}[3]`, SECRET_SHAPE);
      if (callToken !== null && !isCallToken(callToken)) {
        throw corrupt(`${path}[4]`, CALL_TOKEN_SHAPE);
      }
      if (active.has(seq)) throw corrupt(`${path}[0]`, `seq ${seq} is both active and released`);
      const other = byRequest.get(requestId);
      if (other !== undefined) {
        throw corrupt(
          `${path}[2]`,
          `request id ${JSON.stringify(requestId)} is also used by seq ${other.seq}`,
        );
      }
      const r: Reservation = {
        seq,
        units,
        requestId,
        secret: secret ?? undefined,
        callToken: callToken ?? undefined,
        ...(name === "released" ? { releasedAt: (releasedAt as number | null) ?? undefined } : {}),
      };
      target.set(seq, r);
      byRequest.set(requestId, r);
    });
  }
  let sum = 0;
  for (const r of active.values()) sum += r.units;
  if (sum !== reserved) {
    throw corrupt("reserved", `is ${reserved} but the active reservations hold ${sum} units`);
  }
  if (retired && (active.size > 0 || released.size > 0)) {
    throw corrupt(active.size > 0 ? "active" : "released", "must be empty on a retired pool");
  }
  return {
    pool,
    version,
    spec,
    retired,
    reserved,
    active: compact(active),
    byRequest: compact(byRequest),
    released: compact(released),
  };
}

// ---- validation -------------------------------------------------------------

function checkCommand(pool: string, command: PoolCommand): void {
  const c = command as unknown;
  const type = isRecord(c) ? c.type : undefined;
  const fail = (field: string, problem: string): never => {
    throw new InvalidCommandError(
      pool,
      typeof type === "string" ? type : "unknown",
      field,
      problem,
    );
  };
  if (!isRecord(c)) {
    fail("command", `must be an object, got ${typeName(c)}`);
    return;
  }
  if (!Number.isFinite(c.at)) fail("at", `must be a finite number, got ${show(c.at)}`);
  switch (type) {
    case "configure": {
      const p = specProblem(c.spec);
      if (p !== undefined) fail(`spec${p.path}`, p.problem);
      return;
    }
    case "retire":
      return;
    case "reserve":
      if (!isPositiveInt(c.units))
        fail("units", `must be a positive integer, got ${show(c.units)}`);
      if (typeof c.requestId !== "string" || c.requestId.length === 0) {
        fail("requestId", `must be a non-empty string, got ${show(c.requestId)}`);
      }
      // Never echo a secret, not even a malformed one.
      if (!isSecret(c.secret)) fail("secret", SECRET_SHAPE);
      if (c.callToken !== undefined && !isCallToken(c.callToken)) {
        fail("callToken", CALL_TOKEN_SHAPE);
      }
      return;
    case "release": {
      if (!isPositiveInt(c.reservationSeq)) {
        fail("reservationSeq", `must be a positive integer, got ${show(c.reservationSeq)}`);
      }
      const key = c.key;
      if (!isRecord(key)) {
        fail("key", `must be an object, got ${typeName(key)}`);
      } else if (key.kind === "secret") {
        if (!isSecret(key.secret)) fail("key.secret", SECRET_SHAPE);
      } else if (key.kind === "legacy") {
        if (typeof key.checksumValid !== "boolean") {
          fail("key.checksumValid", `must be a boolean, got ${show(key.checksumValid)}`);
        }
      } else {
        fail("key.kind", `must be secret or legacy, got ${show(key.kind)}`);
      }
      return;
    }
    default:
      fail("type", `must be configure, retire, reserve or release, got ${show(type)}`);
  }
}

const SECRET_PATTERN = new RegExp(`^[A-Za-z0-9_-]{${RESERVATION_SECRET_LENGTH}}$`);
const SECRET_SHAPE = `must be ${RESERVATION_SECRET_LENGTH} base64url characters`;
// Call tokens are 1 to MAX_CALL_TOKEN_LENGTH printable ASCII characters.
const CALL_TOKEN_PATTERN = /^[\x21-\x7e]+$/;
const CALL_TOKEN_SHAPE = `must be 1 to ${MAX_CALL_TOKEN_LENGTH} printable ASCII characters`;

function isSecret(x: unknown): x is string {
  return typeof x === "string" && SECRET_PATTERN.test(x);
}

function isCallToken(x: unknown): x is string {
  return typeof x === "string" && x.length <= MAX_CALL_TOKEN_LENGTH && CALL_TOKEN_PATTERN.test(x);
}

function eventProblem(e: unknown): string | undefined {
  if (!isRecord(e)) return `event must be an object, got ${typeName(e)}`;
  if (!Number.isFinite(e.at)) return `at must be a finite number, got ${show(e.at)}`;
  switch (e.type) {
    case "configured": {
      const p = specProblem(e.spec);
      return p === undefined ? undefined : `spec${p.path} ${p.problem}`;
    }
    case "retired":
      return undefined;
    case "reserved":
      if (!isPositiveInt(e.units)) return `units must be a positive integer, got ${show(e.units)}`;
      if (typeof e.requestId !== "string" || e.requestId.length === 0) {
        return `requestId must be a non-empty string, got ${show(e.requestId)}`;
      }
      if (e.secret !== undefined && !isSecret(e.secret)) return `secret ${SECRET_SHAPE}`;
      if (e.callToken !== undefined && !isCallToken(e.callToken)) {
        return `callToken ${CALL_TOKEN_SHAPE}`;
      }
      return undefined;
    case "released":
      if (!isPositiveInt(e.units)) return `units must be a positive integer, got ${show(e.units)}`;
      if (!isPositiveInt(e.reservationSeq)) {
        return `reservationSeq must be a positive integer, got ${show(e.reservationSeq)}`;
      }
      return undefined;
    default:
      return `unknown event type ${show(e.type)}`;
  }
}

function specProblem(s: unknown): { path: string; problem: string } | undefined {
  const at = (path: string, problem: string) => ({ path, problem });
  if (!isRecord(s)) return at("", `must be an object, got ${typeName(s)}`);
  if (!isNonNegativeInt(s.capacity) || s.capacity > MAX_CAPACITY) {
    return at(".capacity", `must be an integer in 0..${MAX_CAPACITY}, got ${show(s.capacity)}`);
  }
  if (typeof s.closed !== "boolean") {
    return at(".closed", `must be a boolean, got ${show(s.closed)}`);
  }
  if (!isNonNegativeInt(s.generation)) {
    return at(".generation", `must be a non-negative integer, got ${show(s.generation)}`);
  }
  if (!isRecord(s.labels)) return at(".labels", `must be an object, got ${typeName(s.labels)}`);
  for (const [k, v] of Object.entries(s.labels)) {
    const keyProblem = labelKeyProblem(k);
    if (keyProblem !== undefined) return at(".labels", keyProblem);
    if (typeof v !== "string") return at(`.labels[${JSON.stringify(k)}]`, "must be a string");
    const valueProblem = labelValueProblem(v);
    if (valueProblem !== undefined) return at(`.labels[${JSON.stringify(k)}]`, valueProblem);
  }
  if (s.window !== undefined) {
    const w = s.window;
    if (!isRecord(w)) return at(".window", `must be an object, got ${typeName(w)}`);
    if (!Number.isSafeInteger(w.startMs)) {
      return at(".window.startMs", `must be an integer, got ${show(w.startMs)}`);
    }
    if (!Number.isSafeInteger(w.endMs) || (w.endMs as number) <= (w.startMs as number)) {
      return at(".window.endMs", `must be an integer above startMs, got ${show(w.endMs)}`);
    }
  }
  return undefined;
}

/**
 * Windows and label values of the specs this process holds, shared by every spec with
 * an equal one (see interning.ts): pools of one delivery slot have the same window, and
 * label values (a zone, a date) repeat across pools. Label keys need no table: V8 keeps
 * one copy of each property name.
 */
const windows = new BoundedInterner<TimeWindowMs>(4096);
const labelValues = new BoundedInterner<string>(4096);

/** The shared, frozen window [startMs, endMs). */
function internWindow(startMs: number, endMs: number): TimeWindowMs {
  const key = `${startMs}/${endMs}`;
  return windows.intern(key, Object.freeze({ startMs, endMs }));
}

/**
 * A fresh spec with only known fields and labels in key order (canonical form); its
 * window and label values are the shared copies (treat them as immutable, as all of a
 * spec). One object literal per shape, so every field is in the object itself.
 */
function normalizeSpec(s: PoolSpec): PoolSpec {
  const labels: Record<string, string> = {};
  for (const k of Object.keys(s.labels).sort()) {
    const value = s.labels[k] as string;
    labels[k] = labelValues.intern(value, value);
  }
  const w = s.window;
  return w === undefined
    ? { capacity: s.capacity, labels, closed: s.closed, generation: s.generation }
    : {
        capacity: s.capacity,
        labels,
        closed: s.closed,
        generation: s.generation,
        window: internWindow(w.startMs, w.endMs),
      };
}

function specEquals(a: PoolSpec, b: PoolSpec): boolean {
  if (a.capacity !== b.capacity || a.closed !== b.closed || a.generation !== b.generation) {
    return false;
  }
  if (a.window?.startMs !== b.window?.startMs || a.window?.endMs !== b.window?.endMs) return false;
  const ak = Object.keys(a.labels);
  if (ak.length !== Object.keys(b.labels).length) return false;
  return ak.every((k) => Object.hasOwn(b.labels, k) && a.labels[k] === b.labels[k]);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isNonNegativeInt(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}

function isPositiveInt(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) > 0;
}

function typeName(x: unknown): string {
  return x === null ? "null" : Array.isArray(x) ? "an array" : typeof x;
}

function show(x: unknown): string {
  if (x === undefined) return "undefined";
  if (typeof x === "number" && !Number.isFinite(x)) return String(x);
  const s = JSON.stringify(x) ?? String(x);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
