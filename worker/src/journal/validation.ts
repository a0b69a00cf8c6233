/**
 * Argument checks shared by every Journal implementation, so that all of them reject
 * the same bad input with the same error class and message (the conformance suite
 * asserts both). Numbers out of range → RangeError; wrong types and values that are
 * not JSON-serialisable → TypeError.
 */

/** Throws TypeError unless `pool` is a non-empty string. */
export function checkPoolId(pool: unknown): asserts pool is string {
  if (typeof pool !== "string" || pool.length === 0) {
    throw new TypeError(`pool must be a non-empty string, got ${describe(pool)}`);
  }
}

/**
 * Throws RangeError unless `value` is a non-negative safe integer (versions, epochs,
 * shards, seqs). `name` is the argument's name as it appears in the message.
 */
export function checkNonNegativeInteger(name: string, value: unknown): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${describe(value)}`);
  }
}

/** Checks an append's target and events; returns each event encoded as JSON text. */
export function checkAppend(target: unknown, events: unknown): string[] {
  if (typeof target !== "object" || target === null) {
    throw new TypeError(`append target must be an object, got ${describe(target)}`);
  }
  const t = target as Record<string, unknown>;
  checkPoolId(t.pool);
  checkNonNegativeInteger("shard", t.shard);
  checkNonNegativeInteger("epoch", t.epoch);
  checkNonNegativeInteger("expectedVersion", t.expectedVersion);
  if (!Array.isArray(events)) {
    throw new TypeError(`events must be an array, got ${describe(events)}`);
  }
  if (t.expectedVersion + events.length > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(
      `append of ${events.length} events at version ${t.expectedVersion} exceeds the largest safe seq`,
    );
  }
  return events.map((e, i) => encodeJson(e, `event at index ${i}`));
}

/** Checks a snapshot's shape (seq ≥ 1) and returns its state encoded as JSON text. */
export function checkSnapshot(pool: unknown, snapshot: unknown): string {
  checkPoolId(pool);
  if (typeof snapshot !== "object" || snapshot === null) {
    throw new TypeError(`snapshot must be an object, got ${describe(snapshot)}`);
  }
  const s = snapshot as Record<string, unknown>;
  if (typeof s.seq !== "number" || !Number.isSafeInteger(s.seq) || s.seq < 1) {
    throw new RangeError(`snapshot seq must be a positive safe integer, got ${describe(s.seq)}`);
  }
  return encodeJson(s.state, "snapshot state");
}

/** The RangeError for a snapshot whose seq has not been appended (yet). */
export function snapshotBeyondVersionError(pool: string, seq: number, version: number): RangeError {
  return new RangeError(
    `snapshot seq ${seq} of pool ${pool} is beyond the pool's version ${version}`,
  );
}

/**
 * JSON-encodes `value`, throwing TypeError when it has no JSON form (undefined, a
 * function, a symbol, a BigInt, a cycle). Note the usual JSON losses: object
 * properties holding undefined vanish, Dates become strings, -0 becomes 0.
 */
export function encodeJson(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e: unknown) {
    throw new TypeError(`${what} is not JSON-serialisable: ${(e as Error).message}`, { cause: e });
  }
  if (text === undefined) {
    throw new TypeError(`${what} is not JSON-serialisable: ${describe(value)}`);
  }
  return text;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return "a symbol";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return String(value);
}
