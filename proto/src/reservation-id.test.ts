import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { InvalidPoolIdError, poolIdProblem } from "./pool-id.js";
import {
  decodeReservationId,
  encodeReservationId,
  MAX_RESERVATION_ID_LENGTH,
  MalformedReservationIdError,
} from "./reservation-id.js";
import { murmur3 } from "./shard-hash.js";

const label = (max: number) =>
  fc.stringMatching(new RegExp(`^[a-z0-9]([-a-z0-9]{0,${max - 2}}[a-z0-9])?$`));
const poolIdArb = fc
  .tuple(
    label(63),
    fc.array(label(63), { minLength: 1, maxLength: 6 }).map((parts) => parts.join(".")),
  )
  .filter(([, name]) => name.length <= 253)
  .map(([ns, name]) => `${ns}/${name}`);
const seqArb = fc.oneof(
  fc.integer({ min: 1, max: 1000 }),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  fc.constant(Number.MAX_SAFE_INTEGER),
);

/** Builds an id with a correct checksum around arbitrary parts, to reach the later checks. */
function withChecksum(pool64: string, seq36: string, version = "r1"): string {
  const body = `${version}.${pool64}.${seq36}`;
  return `${body}.${murmur3(body).toString(16).padStart(8, "0")}`;
}

function assertMalformed(id: string, reason: string): void {
  assert.throws(
    () => decodeReservationId(id),
    (e: unknown) => {
      assert.ok(e instanceof MalformedReservationIdError, String(e));
      assert.equal(e.name, "MalformedReservationIdError");
      assert.equal(e.id, id);
      assert.equal(e.reason, reason);
      assert.ok(e.message.startsWith("malformed reservation id "), e.message);
      assert.ok(e.message.endsWith(`: ${reason}`), e.message);
      return true;
    },
  );
}

test("a reservation id has the documented, pinned format", () => {
  const id = encodeReservationId("default/slots", 1234);
  // Cross-checked with an independent Python implementation; never change this vector.
  assert.equal(id, "r1.ZGVmYXVsdC9zbG90cw.ya.fc4a110c");
  assert.deepEqual(decodeReservationId(id), { pool: "default/slots", seq: 1234 });
});

test("the longest pool with the largest seq still fits in the maximum id length", () => {
  const id = encodeReservationId(`${"n".repeat(63)}/${"a".repeat(253)}`, Number.MAX_SAFE_INTEGER);
  assert.ok(id.length <= MAX_RESERVATION_ID_LENGTH, `${id.length}`);
});

test("encoding rejects an invalid pool id with InvalidPoolIdError", () => {
  assert.throws(() => encodeReservationId("nope", 1), {
    name: "InvalidPoolIdError",
    message: 'invalid pool id: pool id "nope" has no "/"; expected "<namespace>/<name>"',
  });
  assert.throws(() => encodeReservationId("A/b", 1), InvalidPoolIdError);
});

test("encoding rejects a seq that is not a positive safe integer with a RangeError", () => {
  for (const seq of [0, -1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1]) {
    assert.throws(() => encodeReservationId("a/b", seq), {
      name: "RangeError",
      message: `reservation seq must be a positive safe integer, got ${String(seq)}`,
    });
  }
});

test("an empty id is malformed", () => {
  assertMalformed("", "it is empty");
});

test("an id longer than 512 characters is malformed before anything else is checked", () => {
  assertMalformed(`r1.${"A".repeat(510)}`, "it is 513 characters long; the maximum is 512");
});

test("an id with a wrong prefix is malformed", () => {
  assertMalformed("x1.YS9i.1.00000000", 'it does not start with "r1."');
  assertMalformed("hello", 'it does not start with "r1."');
  assertMalformed("R1.YS9i.1.00000000", 'it does not start with "r1."');
});

test("an id with another version is malformed and names the version", () => {
  assertMalformed(
    withChecksum("YS9i", "1", "r2"),
    'unsupported version "r2"; this build reads "r1"',
  );
});

test("an id with the wrong number of parts is malformed", () => {
  assertMalformed(
    "r1.YS9i.1",
    'it has 3 "."-separated parts; expected 4: "r1.<pool>.<seq>.<checksum>"',
  );
  assertMalformed(
    "r1.YS9i.1.0.0",
    'it has 5 "."-separated parts; expected 4: "r1.<pool>.<seq>.<checksum>"',
  );
});

test("an id whose checksum is not 8 hex digits is malformed", () => {
  assertMalformed("r1.YS9i.1.ABCDEF12", 'checksum "ABCDEF12" is not 8 lowercase hex digits');
  assertMalformed("r1.YS9i.1.abc", 'checksum "abc" is not 8 lowercase hex digits');
});

test("an id whose checksum does not match is malformed", () => {
  const good = encodeReservationId("a/b", 1);
  const bad = `${good.slice(0, -8)}00000000`;
  const expected = good.slice(-8);
  assertMalformed(
    bad,
    `checksum mismatch: the id says 00000000, its content hashes to ${expected}`,
  );
});

test("an id with bad base64 is malformed", () => {
  assertMalformed(withChecksum("", "1"), "the pool part is empty");
  assertMalformed(withChecksum("YS9i=", "1"), 'the pool part "YS9i=" is not unpadded base64url');
  assertMalformed(withChecksum("YS+i", "1"), 'the pool part "YS+i" is not unpadded base64url');
  assertMalformed(withChecksum("YS9iY", "1"), 'the pool part "YS9iY" is not unpadded base64url');
  // "YR" and "YQ" both decode to "a": only the canonical one is accepted.
  assertMalformed(withChecksum("YR", "1"), 'the pool part "YR" is not canonical base64url');
  assertMalformed(withChecksum("_w", "1"), 'the pool part "_w" is not UTF-8 text');
});

test("an id holding an invalid pool id is malformed and says why", () => {
  const pool64 = Buffer.from("Default/b").toString("base64url");
  assertMalformed(
    withChecksum(pool64, "1"),
    `it holds an invalid pool id: ${poolIdProblem("Default/b")}`,
  );
});

test("an id whose seq is not a positive safe integer is malformed", () => {
  const pool64 = Buffer.from("a/b").toString("base64url");
  assertMalformed(withChecksum(pool64, ""), "the seq part is empty");
  assertMalformed(
    withChecksum(pool64, "0"),
    'seq "0" is not a positive integer without leading zeros',
  );
  assertMalformed(
    withChecksum(pool64, "01"),
    'seq "01" is not a positive integer without leading zeros',
  );
  assertMalformed(withChecksum(pool64, "1A"), 'seq "1A" is not lowercase base 36');
  assertMalformed(withChecksum(pool64, "-1"), 'seq "-1" is not lowercase base 36');
  const tooBig = (BigInt(Number.MAX_SAFE_INTEGER) + 1n).toString(36);
  assertMalformed(
    withChecksum(pool64, tooBig),
    `seq "${tooBig}" is larger than the largest safe integer`,
  );
  assert.deepEqual(
    decodeReservationId(withChecksum(pool64, Number.MAX_SAFE_INTEGER.toString(36))),
    { pool: "a/b", seq: Number.MAX_SAFE_INTEGER },
  );
});

test("a non-string id is malformed, not a crash", () => {
  assert.throws(() => decodeReservationId(undefined as unknown as string), {
    name: "MalformedReservationIdError",
    message: 'malformed reservation id "undefined": expected a string, got undefined',
  });
});

test("every valid pool and seq survive an encode/decode round trip", () => {
  fc.assert(
    fc.property(poolIdArb, seqArb, (pool, seq) => {
      const id = encodeReservationId(pool, seq);
      assert.ok(id.length <= MAX_RESERVATION_ID_LENGTH);
      assert.match(id, /^[A-Za-z0-9_.-]+$/);
      assert.deepEqual(decodeReservationId(id), { pool, seq });
    }),
    { numRuns: 1000 },
  );
});

const mutationChar = fc.oneof(
  fc.constantFrom(..."ABCabcxyz0189_-.=+/ "),
  fc.string({ minLength: 1, maxLength: 1, unit: "grapheme" }),
);
const mutation = fc.oneof(
  fc.record({ kind: fc.constant("replace" as const), at: fc.nat(), char: mutationChar }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), char: mutationChar }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), char: fc.constant("") }),
);

test("a single-character mutation of a valid id never decodes to another pool or seq", () => {
  fc.assert(
    fc.property(poolIdArb, seqArb, mutation, (pool, seq, m) => {
      const id = encodeReservationId(pool, seq);
      const at = m.at % (id.length + (m.kind === "insert" ? 1 : 0));
      const mutated =
        m.kind === "insert"
          ? id.slice(0, at) + m.char + id.slice(at)
          : id.slice(0, at) + m.char + id.slice(at + 1);
      let decoded: { pool: string; seq: number };
      try {
        decoded = decodeReservationId(mutated);
      } catch (e: unknown) {
        assert.ok(e instanceof MalformedReservationIdError, String(e));
        return;
      }
      assert.deepEqual(decoded, { pool, seq }, `${id} → ${mutated}`);
    }),
    { numRuns: 5000 },
  );
});

test("any substitution of one character of a valid id is rejected", () => {
  const id = encodeReservationId("team-a/seats.berlin", 987654321);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
  for (let i = 0; i < id.length; i++) {
    for (const c of alphabet) {
      if (c === id[i]) continue;
      const mutated = id.slice(0, i) + c + id.slice(i + 1);
      assert.throws(() => decodeReservationId(mutated), MalformedReservationIdError, mutated);
    }
  }
});

test("no string decodes to something that re-encodes differently", () => {
  const idLike = fc
    .tuple(
      fc.constantFrom("r1", "r2", "r", ""),
      fc.string({ unit: fc.constantFrom(..."YS9iQWZ_-=+"), maxLength: 12 }),
      fc.string({ unit: fc.constantFrom(..."0129azZ-"), maxLength: 12 }),
      fc.string({ unit: fc.constantFrom(..."0af9AF"), maxLength: 9 }),
    )
    .map((parts) => parts.join("."));
  const withValidChecksum = fc
    .tuple(
      fc.string({ unit: fc.constantFrom(..."YS9iQWZ_-=+/ab"), maxLength: 12 }),
      fc.string({ unit: fc.constantFrom(..."0129azZ-"), maxLength: 12 }),
    )
    .map(([p, s]) => withChecksum(p, s));
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 600 }), idLike, withValidChecksum), (s) => {
      let decoded: { pool: string; seq: number };
      try {
        decoded = decodeReservationId(s);
      } catch (e: unknown) {
        assert.ok(e instanceof MalformedReservationIdError, String(e));
        return;
      }
      assert.equal(encodeReservationId(decoded.pool, decoded.seq), s);
    }),
    { numRuns: 5000 },
  );
});
