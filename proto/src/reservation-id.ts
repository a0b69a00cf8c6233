/**
 * Reservation ids are capabilities. An id carries its pool, so `Release` routes to
 * the pool's owner with no lookup table, and a secret of 128 random bits fixed when
 * the reservation was made and kept in its journal event, so nobody who was not
 * given the id can forge it: knowing the pool and the seq (both public) is not
 * enough.
 *
 * Format (version 2, what this build writes): `r2.<pool>.<seq>.<secret>` where
 * - `<pool>` is the pool id's UTF-8 bytes in unpadded base64url (canonical form only),
 * - `<seq>` is the journal sequence number that created the reservation, in
 *   lowercase base 36 without leading zeros (a positive safe integer),
 * - `<secret>` is {@link RESERVATION_SECRET_BYTES} random bytes in unpadded,
 *   canonical base64url ({@link RESERVATION_SECRET_LENGTH} characters).
 *
 * There is no checksum: the secret is the integrity check. A corrupted id either
 * fails to decode or names a pool and seq whose stored secret it does not match,
 * and such a release answers NOT_FOUND exactly like an unknown reservation — it can
 * never release anything else (that needs a 128-bit guess).
 *
 * Version 1 (`r1.<pool>.<seq>.<checksum>`, murmur3 of `r1.<pool>.<seq>`) was written
 * before reservations had secrets. It is still decoded, so a reservation made before
 * the upgrade (its event has no secret) can still be released with the id it was
 * given; an r1 id never matches a reservation that has a secret. The decoder does
 * not reject a wrong r1 checksum: it reports `checksumValid: false`, and the owner
 * answers NOT_FOUND for it like for any id that matches nothing — no answer says
 * what a correct checksum (or secret) would be.
 *
 * Decoding accepts only the exact text the encoders produce, so an id that decodes
 * re-encodes to itself (for r1: with a valid checksum).
 */

import { InvalidPoolIdError, poolIdProblem } from "./pool-id.js";
import { murmur3 } from "./shard-hash.js";

/** Longest reservation id accepted; longer input is rejected before any parsing. */
export const MAX_RESERVATION_ID_LENGTH = 512;

/** The version prefix of the ids this build writes. */
export const RESERVATION_ID_VERSION = "r2";

/** The version prefix of ids written before reservations had secrets; still read. */
export const LEGACY_RESERVATION_ID_VERSION = "r1";

/** Random bytes in a reservation secret: 128 bits. */
export const RESERVATION_SECRET_BYTES = 16;

/** Characters of a reservation secret in unpadded base64url. */
export const RESERVATION_SECRET_LENGTH = Math.ceil((RESERVATION_SECRET_BYTES * 8) / 6);

/** What a reservation id names: its pool and seq, and what proves it was issued. */
export type DecodedReservationId =
  | {
      readonly format: "r2";
      readonly pool: string;
      readonly seq: number;
      /** The secret, as it appears in the id (base64url). */
      readonly secret: string;
    }
  | {
      readonly format: "r1";
      readonly pool: string;
      readonly seq: number;
      /** Whether the id's murmur3 checksum matches its content. */
      readonly checksumValid: boolean;
    };

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
 * Thrown when a string is not shaped like a reservation id this build can decode:
 * empty, too long, wrong prefix or version, wrong number of parts, bad base64, an
 * invalid pool id inside, a seq that is not a positive safe integer, or a secret
 * (r1: checksum) of the wrong shape. Never thrown for a well-shaped id that merely
 * matches no reservation: that is the owner's NOT_FOUND.
 */
export class MalformedReservationIdError extends Error {
  override readonly name = "MalformedReservationIdError";

  /**
   * @param id the rejected input, unchanged
   * @param reason what is wrong with its shape, for people (not a stable API)
   */
  constructor(
    readonly id: string,
    readonly reason: string,
  ) {
    super(`malformed reservation id ${quote(String(id))}: ${reason}`);
  }
}

/** Whether `secret` is a reservation secret's canonical text. */
export function isReservationSecret(secret: string): boolean {
  return (
    typeof secret === "string" &&
    secret.length === RESERVATION_SECRET_LENGTH &&
    BASE64URL.test(secret) &&
    Buffer.from(secret, "base64url").toString("base64url") === secret
  );
}

function body(version: string, pool: string, seq: number): string {
  const problem = poolIdProblem(pool);
  if (problem !== undefined) throw new InvalidPoolIdError(pool, problem);
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new RangeError(`reservation seq must be a positive safe integer, got ${String(seq)}`);
  }
  return `${version}.${Buffer.from(pool, "utf8").toString("base64url")}.${seq.toString(36)}`;
}

/**
 * Encodes the id of the reservation created at journal sequence `seq` of `pool`
 * with `secret`.
 *
 * @param pool a valid pool id `<namespace>/<name>`
 * @param seq the journal sequence number, a positive safe integer
 * @param secret the reservation's secret, {@link RESERVATION_SECRET_LENGTH} base64url characters
 * @returns the id, at most {@link MAX_RESERVATION_ID_LENGTH} characters, ASCII only
 * @throws InvalidPoolIdError when `pool` is not a valid pool id
 * @throws RangeError when `seq` is not a positive safe integer or `secret` is not a secret
 */
export function encodeReservationId(pool: string, seq: number, secret: string): string {
  const b = body(RESERVATION_ID_VERSION, pool, seq);
  if (!isReservationSecret(secret)) {
    throw new RangeError(
      `reservation secret must be ${RESERVATION_SECRET_LENGTH} characters of canonical base64url`,
    );
  }
  return `${b}.${secret}`;
}

/**
 * Encodes the version-1 id of a reservation made before reservations had secrets:
 * what a replayed Reserve of such a reservation answers, so it keeps its first id.
 *
 * @throws InvalidPoolIdError when `pool` is not a valid pool id
 * @throws RangeError when `seq` is not a positive safe integer
 */
export function encodeLegacyReservationId(pool: string, seq: number): string {
  const b = body(LEGACY_RESERVATION_ID_VERSION, pool, seq);
  return `${b}.${checksum(b)}`;
}

/**
 * Decodes a reservation id's shape: its pool and seq (to route and look it up) and
 * its proof (secret, or r1 checksum validity). Whether it matches a reservation is
 * for the pool's owner to say.
 *
 * @param id untrusted input, e.g. from a `Release` request
 * @throws MalformedReservationIdError when `id` is not shaped like a reservation id
 */
export function decodeReservationId(id: string): DecodedReservationId {
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
  const legacy = version === LEGACY_RESERVATION_ID_VERSION;
  if (version !== RESERVATION_ID_VERSION && !legacy) {
    return /^r[0-9]+$/.test(version) && parts.length > 1
      ? fail(
          `unsupported version ${quote(version)}; this build reads "${RESERVATION_ID_VERSION}" (and "${LEGACY_RESERVATION_ID_VERSION}")`,
        )
      : fail(`it does not start with "${RESERVATION_ID_VERSION}."`);
  }
  const last = legacy ? "<checksum>" : "<secret>";
  if (parts.length !== 4) {
    return fail(
      `it has ${parts.length} "."-separated parts; expected 4: "${version}.<pool>.<seq>.${last}"`,
    );
  }
  const [, pool64, seq36, proof] = parts as [string, string, string, string];

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
  const seq = Number(big);

  if (legacy) {
    // The checksum's shape is checked; its value is not judged here (see the module doc).
    if (!HEX8.test(proof)) return fail("the checksum part is not 8 lowercase hex digits");
    return {
      format: "r1",
      pool,
      seq,
      checksumValid: proof === checksum(`${version}.${pool64}.${seq36}`),
    };
  }
  if (!isReservationSecret(proof)) {
    return fail(
      `the secret part is not ${RESERVATION_SECRET_LENGTH} characters of canonical base64url`,
    );
  }
  return { format: "r2", pool, seq, secret: proof };
}
