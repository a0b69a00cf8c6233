/**
 * Given/when/then helper for the pool decider. For tests only: not exported from
 * the package entry point.
 *
 * ```ts
 * given(configured({ capacity: 5 }))
 *   .when(reserve(2, "r1"))
 *   .thenEvents(reserved("r1", 2))
 *   .thenReply({ type: "reserved", reservationSeq: 2, units: 2, replayed: false, secret: secretOf("r1") });
 * ```
 *
 * Assertion failures throw `PoolTestkitAssertionError` (no `node:assert` here:
 * src/domain stays free of `node:*`).
 */

import type {
  Decision,
  PoolCommand,
  PoolEvent,
  PoolSpec,
  PoolState,
  Rejection,
  Reply,
  ReservationKey,
} from "./pool.js";
import { decide, evolve, initialState } from "./pool.js";

/** Pool id used by `given` unless `givenPool` names another. */
export const TEST_POOL = "default/test-pool";

/** Thrown when a given/when/then expectation does not hold. */
export class PoolTestkitAssertionError extends Error {
  override readonly name = "PoolTestkitAssertionError";
  constructor(
    message: string,
    readonly expected: unknown,
    readonly actual: unknown,
  ) {
    super(
      `${message}\n  expected: ${JSON.stringify(expected)}\n  actual:   ${JSON.stringify(actual)}`,
    );
  }
}

/** The outcome of `when`, with chainable expectations. */
export interface PoolThen {
  readonly state: PoolState;
  readonly decision: Decision;
  /** Expects acceptance with exactly these events (none: accepted with no events). */
  thenEvents(...expected: PoolEvent[]): PoolThen;
  /** Expects acceptance with this reply. */
  thenReply(expected: Reply): PoolThen;
  /** Expects a rejection with this code and, if given, this exact message (or one matching the RegExp). */
  thenRejected(code: Rejection["code"], message?: string | RegExp): PoolThen;
}

/** A state built from past events, ready for a command. */
export interface PoolGiven {
  /** State after the given events. `when` does not consume it (decide is pure). */
  readonly state: PoolState;
  when(command: PoolCommand): PoolThen;
}

/** Folds `events` (seq 1..n) from the initial state of `TEST_POOL`. */
export function given(...events: PoolEvent[]): PoolGiven {
  return givenPool(TEST_POOL, ...events);
}

/** Folds `events` (seq 1..n) from the initial state of `pool`. */
export function givenPool(pool: string, ...events: PoolEvent[]): PoolGiven {
  let state = initialState(pool);
  for (const e of events) state = evolve(state, e, state.version + 1);
  return {
    state,
    when(command) {
      return then(state, decide(state, command));
    },
  };
}

function then(state: PoolState, decision: Decision): PoolThen {
  const self: PoolThen = {
    state,
    decision,
    thenEvents(...expected) {
      if (!decision.ok) {
        throw new PoolTestkitAssertionError(
          "expected acceptance, got a rejection",
          expected,
          decision,
        );
      }
      if (!jsonEqual(decision.events, expected)) {
        throw new PoolTestkitAssertionError("unexpected events", expected, decision.events);
      }
      return self;
    },
    thenReply(expected) {
      if (!decision.ok) {
        throw new PoolTestkitAssertionError(
          "expected acceptance, got a rejection",
          expected,
          decision,
        );
      }
      if (!jsonEqual(decision.reply, expected)) {
        throw new PoolTestkitAssertionError("unexpected reply", expected, decision.reply);
      }
      return self;
    },
    thenRejected(code, message) {
      if (decision.ok) {
        throw new PoolTestkitAssertionError(`expected rejection ${code}`, code, decision);
      }
      const r = decision.rejection;
      if (r.code !== code) throw new PoolTestkitAssertionError("unexpected rejection", code, r);
      const messageOk =
        message === undefined ||
        (typeof message === "string" ? r.message === message : message.test(r.message));
      if (!messageOk) {
        throw new PoolTestkitAssertionError(
          "unexpected rejection message",
          String(message),
          r.message,
        );
      }
      return self;
    },
  };
  return self;
}

// Events and replies are plain JSON data; key order is fixed by the builders.
function jsonEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(canonical);
  if (typeof x === "object" && x !== null) {
    return Object.fromEntries(
      Object.entries(x)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return x;
}

/** A spec with defaults: capacity 10, no labels, open, generation 1, no window. */
export function spec(overrides: Partial<PoolSpec> = {}): PoolSpec {
  return { capacity: 10, labels: {}, closed: false, generation: 1, ...overrides };
}

/** A `configured` event for `spec(overrides)`. */
export function configured(overrides: Partial<PoolSpec> = {}, at = 0): PoolEvent {
  return { type: "configured", spec: spec(overrides), at };
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * A deterministic, valid-looking secret for a request id (tests only: real secrets
 * are random). Different request ids give different secrets; the last character is
 * one a canonical 16-byte base64url string may end with.
 */
export function secretOf(requestId: string): string {
  let h = 2166136261;
  let out = "";
  for (let i = 0; i < 21; i++) {
    for (const c of `${requestId}#${i}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
    out += B64URL[h % 64];
  }
  return `${out}A`;
}

/** A `reserved` event with the secret `secretOf(requestId)` (and `callToken`, if given). */
export function reserved(requestId: string, units: number, at = 0, callToken?: string): PoolEvent {
  const base = { type: "reserved", requestId, units, at, secret: secretOf(requestId) } as const;
  return callToken === undefined ? base : { ...base, callToken };
}

/** A `reserved` event as written before reservations had secrets (legacy). */
export function legacyReserved(requestId: string, units: number, at = 0): PoolEvent {
  return { type: "reserved", requestId, units, at };
}

/** A `released` event. */
export function released(reservationSeq: number, units: number, at = 0): PoolEvent {
  return { type: "released", reservationSeq, units, at };
}

/** A `retired` event (the pool's CapacityPool was deleted). */
export function retired(at = 0): PoolEvent {
  return { type: "retired", at };
}

/** A retire command (the pool's CapacityPool was deleted). */
export function retire(at = 0): PoolCommand {
  return { type: "retire", at };
}

/** A configure command for `spec(overrides)`. */
export function configure(overrides: Partial<PoolSpec> = {}, at = 0): PoolCommand {
  return { type: "configure", spec: spec(overrides), at };
}

/** A reserve command whose secret is `secretOf(requestId)` (and `callToken`, if given). */
export function reserve(units: number, requestId: string, at = 0, callToken?: string): PoolCommand {
  const base = { type: "reserve", units, requestId, at, secret: secretOf(requestId) } as const;
  return callToken === undefined ? base : { ...base, callToken };
}

/** A release command presenting `secretOf(requestId)`: the key of the reservation made for it. */
export function release(reservationSeq: number, requestId: string, at = 0): PoolCommand {
  return releaseWith(reservationSeq, { kind: "secret", secret: secretOf(requestId) }, at);
}

/** A release command presenting `key`. */
export function releaseWith(reservationSeq: number, key: ReservationKey, at = 0): PoolCommand {
  return { type: "release", reservationSeq, key, at };
}
