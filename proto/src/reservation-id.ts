/**
 * Reservation ids carry their pool, so `Release` routes to the pool's owner with
 * no lookup table, and a checksum, so a corrupted id is rejected instead of being
 * routed to (and releasing something in) another pool.
 *
 * Format (version 1): `r1.<pool>.<seq>.<checksum>` where
 * - `<pool>` is the pool id's UTF-8 bytes in unpadded base64url (canonical form only),
 * - `<seq>` is the journal sequence number that created the reservation, in
 *   lowercase base 36 without leading zeros (a positive safe integer),
 * - `<checksum>` is 8 lowercase hex digits of murmur3 (seed 0) over the text
 *   `r1.<pool>.<seq>` — version, pool and seq.
 *
 * Decoding accepts only the exact text {@link encodeReservationId} produces, so an id
 * that decodes re-encodes to itself. Any single-character substitution is always
 * detected: murmur3 is a bijection of each 4-byte block for inputs of equal length,
 * so changing one byte of the checked text always changes the checksum (and changing
 * the checksum itself no longer matches). Other corruptions (insertions, deletions,
 * several changes) slip through with probability about 2^-32 — and then still name a
 * valid pool id and seq, never garbage.
 */

import { InvalidPoolIdError, poolIdProblem } from "./pool-id.js";
import { murmur3 } from "./shard-hash.js";

/** Longest reservation id accepted; longer input is rejected before any parsing. */
export const MAX_RESERVATION_ID_LENGTH = 512;

/** The version prefix of the ids this build writes and reads. */
export const RESERVATION_ID_VERSION = "r1";

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const BASE36 = /^[0-9a-z]+$/;
const HEX8 = /^[0-9a-f]{8}$/;
const QUOTE_LIMIT = 80;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function quote(text: string): string {
  return text.length > QUOTE_LIMIT
    ? `${JSON.stringify(text.slice(0, QUOTE_LIMIT))}… (${text.length} characters)`
    : JSON.stringify(text);
}

function checksum(body: string): string {
  return murmur3(body).toString(16).padStart(8, "0");
}

/**
 * Thrown when a string is not a reservation id this build can decode: empty, too
 * long, wrong prefix or version, wrong shape, bad checksum, bad base64, an invalid
 * pool id inside, or a seq that is not a positive safe integer.
 */
export class MalformedReservationIdError extends Error {
  override readonly name = "MalformedReservationIdError";

  /**
   * @param id the rejected input, unchanged
   * @param reason what is wrong with it, for people (not a stable API)
   */
  constructor(
    readonly id: string,
    readonly reason: string,
  ) {
    super(`malformed reservation id ${quote(String(id))}: ${reason}`);
  }
}

/**
 * Encodes a reservation id for the reservation created at journal sequence `seq`
 * of `pool`.
 *
 * @param pool a valid pool id `<namespace>/<name>`
 * @param seq the journal sequence number, a positive safe integer
 * @returns the id, at most {@link MAX_RESERVATION_ID_LENGTH} characters, ASCII only
 * @throws InvalidPoolIdError when `pool` is not a valid pool id
 * @throws RangeError when `seq` is not a positive safe integer
 */
export function encodeReservationId(pool: string, seq: number): string {
  const problem = poolIdProblem(pool);
  if (problem !== undefined) throw new InvalidPoolIdError(pool, problem);
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new RangeError(`reservation seq must be a positive safe integer, got ${String(seq)}`);
  }
  const body = `${RESERVATION_ID_VERSION}.${Buffer.from(pool, "utf8").toString("base64url")}.${seq.toString(36)}`;
  return `${body}.${checksum(body)}`;
}

/**
 * Decodes a reservation id written by {@link encodeReservationId}.
 *
 * @param id untrusted input, e.g. from a `Release` request
 * @returns the pool and the seq it was encoded from
 * @throws MalformedReservationIdError for anything else, with the precise reason
 */
export function decodeReservationId(id: string): { pool: string; seq: number } {
  const fail = (reason: string): never => {
    throw new MalformedReservationIdError(id, reason);
  };
  if (typeof id !== "string") return fail(`expected a string, got ${typeof id}`);
  if (id === "") return fail("it is empty");
  if (id.length > MAX_RESERVATION_ID_LENGTH) {
    return fail(`it is ${id.length} characters long; the maximum is ${MAX_RESERVATION_ID_LENGTH}`);
  }
  const parts = id.split(".");
  const version = parts[0] as string;
  if (version !== RESERVATION_ID_VERSION) {
    return /^r[0-9]+$/.test(version) && parts.length > 1
      ? fail(`unsupported version ${quote(version)}; this build reads "${RESERVATION_ID_VERSION}"`)
      : fail(`it does not start with "${RESERVATION_ID_VERSION}."`);
  }
  if (parts.length !== 4) {
    return fail(
      `it has ${parts.length} "."-separated parts; expected 4: "${RESERVATION_ID_VERSION}.<pool>.<seq>.<checksum>"`,
    );
  }
  const [, pool64, seq36, sum] = parts as [string, string, string, string];
  if (!HEX8.test(sum)) return fail(`checksum ${quote(sum)} is not 8 lowercase hex digits`);
  const expected = checksum(`${version}.${pool64}.${seq36}`);
  if (sum !== expected)
    return fail(`checksum mismatch: the id says ${sum}, its content hashes to ${expected}`);

  if (pool64 === "") return fail("the pool part is empty");
  if (!BASE64URL.test(pool64) || pool64.length % 4 === 1) {
    return fail(`the pool part ${quote(pool64)} is not unpadded base64url`);
  }
  const bytes = Buffer.from(pool64, "base64url");
  if (bytes.toString("base64url") !== pool64) {
    return fail(`the pool part ${quote(pool64)} is not canonical base64url`);
  }
  let pool: string;
  try {
    pool = utf8.decode(bytes);
  } catch {
    return fail(`the pool part ${quote(pool64)} is not UTF-8 text`);
  }
  const problem = poolIdProblem(pool);
  if (problem !== undefined) return fail(`it holds an invalid pool id: ${problem}`);

  if (seq36 === "") return fail("the seq part is empty");
  if (!BASE36.test(seq36)) return fail(`seq ${quote(seq36)} is not lowercase base 36`);
  if (seq36.startsWith("0")) {
    return fail(`seq ${quote(seq36)} is not a positive integer without leading zeros`);
  }
  let big = 0n;
  for (const c of seq36) big = big * 36n + BigInt(Number.parseInt(c, 36));
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
    return fail(`seq ${quote(seq36)} is larger than the largest safe integer`);
  }
  return { pool, seq: Number(big) };
}
