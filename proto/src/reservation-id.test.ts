import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { InvalidPoolIdError, poolIdProblem } from "./pool-id.js";
import {
  type DecodedReservationId,
  decodeReservationId,
  encodeLegacyReservationId,
  encodeReservationId,
  isReservationSecret,
  MAX_RESERVATION_ID_LENGTH,
  MalformedReservationIdError,
  RESERVATION_SECRET_LENGTH,
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

const secretArb = fc
  .uint8Array({ minLength: 16, maxLength: 16 })
  .map((b) => Buffer.from(b).toString("base64url"));
const SECRET = Buffer.alloc(16, 7).toString("base64url");

/** Builds an r1 id with a correct checksum around arbitrary parts, to reach the later checks. */
function withChecksum(pool64: string, seq36: string): string {
  const body = `r1.${pool64}.${seq36}`;
  return `${body}.${murmur3(body).toString(16).padStart(8, "0")}`;
}

/** Builds an r2 id around arbitrary parts. */
function r2(pool64: string, seq36: string, secret = SECRET): string {
  return `r2.${pool64}.${seq36}.${secret}`;
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

function reencode(d: DecodedReservationId): string {
  return d.format === "r2"
    ? encodeReservationId(d.pool, d.seq, d.secret)
    : encodeLegacyReservationId(d.pool, d.seq);
}

test("a reservation id has the documented, pinned format: pool, seq and a 128-bit secret", () => {
  const secret = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex").toString("base64url");
  const id = encodeReservationId("default/slots", 1234, secret);
  assert.equal(id, "r2.ZGVmYXVsdC9zbG90cw.ya.AAECAwQFBgcICQoLDA0ODw");
  assert.equal(RESERVATION_SECRET_LENGTH, 22);
  assert.deepEqual(decodeReservationId(id), {
    format: "r2",
    pool: "default/slots",
    seq: 1234,
    secret,
  });
});

test("a legacy r1 id still decodes, and says whether its checksum is valid", () => {
  // The r1 vector written by earlier builds; never change it.
  const id = "r1.ZGVmYXVsdC9zbG90cw.ya.fc4a110c";
  assert.equal(encodeLegacyReservationId("default/slots", 1234), id);
  assert.deepEqual(decodeReservationId(id), {
    format: "r1",
    pool: "default/slots",
    seq: 1234,
    checksumValid: true,
  });
  assert.deepEqual(decodeReservationId("r1.ZGVmYXVsdC9zbG90cw.ya.00000000"), {
    format: "r1",
    pool: "default/slots",
    seq: 1234,
    checksumValid: false,
  });
});

test("no decoding error ever says what an id's checksum should be", () => {
  fc.assert(
    fc.property(poolIdArb, seqArb, fc.stringMatching(/^[0-9a-fA-F]{0,9}$/), (pool, seq, sum) => {
      const good = encodeLegacyReservationId(pool, seq);
      const expected = good.slice(-8);
      const forged = `${good.slice(0, -8)}${sum}`;
      try {
        const d = decodeReservationId(forged);
        assert.equal(d.format, "r1");
        assert.equal(d.format === "r1" && d.checksumValid, sum === expected);
      } catch (e: unknown) {
        assert.ok(e instanceof MalformedReservationIdError, String(e));
        if (sum !== expected) assert.ok(!e.message.includes(expected), e.message);
      }
    }),
    { numRuns: 500 },
  );
});

test("the longest pool with the largest seq still fits in the maximum id length", () => {
  const id = encodeReservationId(
    `${"n".repeat(63)}/${"a".repeat(253)}`,
    Number.MAX_SAFE_INTEGER,
    SECRET,
  );
  assert.ok(id.length <= MAX_RESERVATION_ID_LENGTH, `${id.length}`);
});

test("encoding rejects an invalid pool id with InvalidPoolIdError", () => {
  assert.throws(() => encodeReservationId("nope", 1, SECRET), {
    name: "InvalidPoolIdError",
    message: 'invalid pool id: pool id "nope" has no "/"; expected "<namespace>/<name>"',
  });
  assert.throws(() => encodeReservationId("A/b", 1, SECRET), InvalidPoolIdError);
  assert.throws(() => encodeLegacyReservationId("A/b", 1), InvalidPoolIdError);
});

test("encoding rejects a seq that is not a positive safe integer with a RangeError", () => {
  for (const seq of [0, -1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1]) {
    assert.throws(() => encodeReservationId("a/b", seq, SECRET), {
      name: "RangeError",
      message: `reservation seq must be a positive safe integer, got ${String(seq)}`,
    });
  }
});

test("encoding rejects a secret that is not 22 characters of canonical base64url", () => {
  for (const secret of [
    "",
    "short",
    `${SECRET}A`,
    `${SECRET.slice(0, -1)}+`,
    "AAAAAAAAAAAAAAAAAAAAAB",
  ]) {
    assert.equal(isReservationSecret(secret), false, secret);
    assert.throws(() => encodeReservationId("a/b", 1, secret), {
      name: "RangeError",
      message: "reservation secret must be 22 characters of canonical base64url",
    });
  }
});

test("an empty id is malformed", () => {
  assertMalformed("", "it is empty");
});

test("an id longer than 512 characters is malformed before anything else is checked", () => {
  assertMalformed(`r2.${"A".repeat(510)}`, "it is 513 characters long; the maximum is 512");
});

test("an id with a wrong prefix is malformed", () => {
  assertMalformed(`x2.YS9i.1.${SECRET}`, 'it does not start with "r2."');
  assertMalformed("hello", 'it does not start with "r2."');
  assertMalformed(`R2.YS9i.1.${SECRET}`, 'it does not start with "r2."');
});

test("an id with another version is malformed and names the version", () => {
  assertMalformed(
    `r3.YS9i.1.${SECRET}`,
    'unsupported version "r3"; this build reads "r2" (and "r1")',
  );
});

test("an id with the wrong number of parts is malformed", () => {
  assertMalformed(
    "r2.YS9i.1",
    'it has 3 "."-separated parts; expected 4: "r2.<pool>.<seq>.<secret>"',
  );
  assertMalformed(
    "r1.YS9i.1.0.0",
    'it has 5 "."-separated parts; expected 4: "r1.<pool>.<seq>.<checksum>"',
  );
});

test("an id whose secret (or r1 checksum) has the wrong shape is malformed, without quoting it", () => {
  const shape = "the secret part is not 22 characters of canonical base64url";
  assertMalformed(r2("YS9i", "1", "abc"), shape);
  assertMalformed(r2("YS9i", "1", `${SECRET}A`), shape);
  assertMalformed(r2("YS9i", "1", "AAAAAAAAAAAAAAAAAAAAAB"), shape);
  assertMalformed(r2("YS9i", "1", ""), shape);
  assertMalformed("r1.YS9i.1.ABCDEF12", "the checksum part is not 8 lowercase hex digits");
  assertMalformed("r1.YS9i.1.abc", "the checksum part is not 8 lowercase hex digits");
});

test("an id with bad base64 is malformed", () => {
  for (const make of [(p: string) => r2(p, "1"), (p: string) => withChecksum(p, "1")]) {
    assertMalformed(make(""), "the pool part is empty");
    assertMalformed(make("YS9i="), 'the pool part "YS9i=" is not unpadded base64url');
    assertMalformed(make("YS+i"), 'the pool part "YS+i" is not unpadded base64url');
    assertMalformed(make("YS9iY"), 'the pool part "YS9iY" is not unpadded base64url');
    // "YR" and "YQ" both decode to "a": only the canonical one is accepted.
    assertMalformed(make("YR"), 'the pool part "YR" is not canonical base64url');
    assertMalformed(make("_w"), 'the pool part "_w" is not UTF-8 text');
  }
});

test("an id holding an invalid pool id is malformed and says why", () => {
  const pool64 = Buffer.from("Default/b").toString("base64url");
  assertMalformed(r2(pool64, "1"), `it holds an invalid pool id: ${poolIdProblem("Default/b")}`);
});

test("an id whose seq is not a positive safe integer is malformed", () => {
  const pool64 = Buffer.from("a/b").toString("base64url");
  assertMalformed(r2(pool64, ""), "the seq part is empty");
  assertMalformed(r2(pool64, "0"), 'seq "0" is not a positive integer without leading zeros');
  assertMalformed(r2(pool64, "01"), 'seq "01" is not a positive integer without leading zeros');
  assertMalformed(r2(pool64, "1A"), 'seq "1A" is not lowercase base 36');
  assertMalformed(r2(pool64, "-1"), 'seq "-1" is not lowercase base 36');
  const tooBig = (BigInt(Number.MAX_SAFE_INTEGER) + 1n).toString(36);
  assertMalformed(r2(pool64, tooBig), `seq "${tooBig}" is larger than the largest safe integer`);
  assert.deepEqual(decodeReservationId(r2(pool64, Number.MAX_SAFE_INTEGER.toString(36))), {
    format: "r2",
    pool: "a/b",
    seq: Number.MAX_SAFE_INTEGER,
    secret: SECRET,
  });
});

test("a non-string id is malformed, not a crash", () => {
  assert.throws(() => decodeReservationId(undefined as unknown as string), {
    name: "MalformedReservationIdError",
    message: 'malformed reservation id "undefined": expected a string, got undefined',
  });
});

test("every valid pool, seq and secret survive an encode/decode round trip", () => {
  fc.assert(
    fc.property(poolIdArb, seqArb, secretArb, (pool, seq, secret) => {
      const id = encodeReservationId(pool, seq, secret);
      assert.ok(id.length <= MAX_RESERVATION_ID_LENGTH);
      assert.match(id, /^[A-Za-z0-9_.-]+$/);
      assert.deepEqual(decodeReservationId(id), { format: "r2", pool, seq, secret });
      const legacy = encodeLegacyReservationId(pool, seq);
      assert.deepEqual(decodeReservationId(legacy), {
        format: "r1",
        pool,
        seq,
        checksumValid: true,
      });
    }),
    { numRuns: 1000 },
  );
});

test("no string decodes to something that re-encodes differently", () => {
  const idLike = fc
    .tuple(
      fc.constantFrom("r1", "r2", "r", ""),
      fc.string({ unit: fc.constantFrom(..."YS9iQWZ_-=+"), maxLength: 12 }),
      fc.string({ unit: fc.constantFrom(..."0129azZ-"), maxLength: 12 }),
      fc.oneof(
        fc.string({ unit: fc.constantFrom(..."0af9AF"), maxLength: 9 }),
        secretArb,
        fc.string({ unit: fc.constantFrom(..."AQgw_-+="), minLength: 21, maxLength: 23 }),
      ),
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
      let decoded: DecodedReservationId;
      try {
        decoded = decodeReservationId(s);
      } catch (e: unknown) {
        assert.ok(e instanceof MalformedReservationIdError, String(e));
        return;
      }
      if (decoded.format === "r1" && !decoded.checksumValid) return;
      assert.equal(reencode(decoded), s);
    }),
    { numRuns: 5000 },
  );
});
