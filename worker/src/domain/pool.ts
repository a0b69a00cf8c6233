/**
 * The pool entity: a pure decider. `decide` turns a command into events or a
 * rejection; `evolve` folds one event into the state. No IO, no clock, no
 * randomness: time arrives in the command.
 *
 * Events are the storage format. Change them additively only: new optional
 * fields or new event types, never a renamed or re-typed field.
 */

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

export type PoolCommand =
  | { readonly type: "configure"; readonly spec: PoolSpec; readonly at: number }
  | {
      readonly type: "reserve";
      readonly units: number;
      readonly requestId: string;
      readonly at: number;
    }
  | { readonly type: "release"; readonly reservationSeq: number; readonly at: number };

/** Journal event, format version 1. A reservation is named by the seq of its `reserved` event. */
export type PoolEvent =
  | { readonly type: "configured"; readonly spec: PoolSpec; readonly at: number }
  | {
      readonly type: "reserved";
      readonly requestId: string;
      readonly units: number;
      readonly at: number;
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
}

/** In-memory state of one pool. */
export interface PoolState {
  /** Pool id "<namespace>/<name>". */
  readonly pool: string;
  /** Seq of the last applied event; 0 before the first. */
  readonly version: number;
  /** Undefined until the pool is first configured: such a pool does not exist. */
  readonly spec: PoolSpec | undefined;
  /** Sum of units of active reservations. May exceed capacity after a capacity cut. */
  readonly reserved: number;
  /** Active (not released) reservations by seq. */
  readonly active: ReadonlyMap<number, Reservation>;
  /** Every reservation ever made, active or released, by request id (idempotency). */
  readonly byRequest: ReadonlyMap<string, Reservation>;
}

/** Why a command was refused: an answer, not an exception. */
export type Rejection =
  | { readonly code: "POOL_NOT_FOUND"; readonly message: string }
  | { readonly code: "POOL_CLOSED"; readonly message: string }
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
