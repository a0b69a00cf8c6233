import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encodePageToken } from "@berth/common";
import {
  encodeReservationId,
  type FieldViolation,
  MAX_TIMESTAMP_SECONDS,
  MIN_TIMESTAMP_SECONDS,
} from "@berth/proto";
import fc from "fast-check";
import {
  validateGetAvailability,
  validateGetPool,
  validateRelease,
  validateReserve,
} from "./validation.js";

const validReserve = { pool: "default/van-north", units: 2, requestId: "req-1" };
const validAvailability = {
  labelSelector: "",
  window: undefined,
  minUnits: 0,
  pageSize: 0,
  pageToken: "",
  includeClosed: false,
};

/** Asserts exactly one violation, on `field`, whose description matches `pattern`. */
function assertOne(violations: FieldViolation[], field: string, pattern: RegExp): void {
  assert.equal(violations.length, 1, JSON.stringify(violations));
  const [v] = violations as [FieldViolation];
  assert.equal(v.field, field);
  assert.match(v.description, pattern);
}

describe("validateReserve", () => {
  test("a well-formed reserve has no violations", () => {
    assert.deepEqual(validateReserve(validReserve), []);
    assert.deepEqual(validateReserve({ ...validReserve, units: 1_000_000 }), []);
    assert.deepEqual(validateReserve({ ...validReserve, requestId: "~ !".repeat(42) }), []);
  });

  test("an empty pool id is named with the expected form", () => {
    assertOne(validateReserve({ ...validReserve, pool: "" }), "pool", /empty.*<namespace>\/<name>/);
  });

  test("an oversized pool id is rejected by its length before its syntax", () => {
    const pool = `a/${"b".repeat(400)}`;
    assertOne(
      validateReserve({ ...validReserve, pool }),
      "pool",
      /402 characters long; the maximum is 317/,
    );
  });

  test("a malformed pool id says what is wrong", () => {
    assertOne(validateReserve({ ...validReserve, pool: "Default/x" }), "pool", /"D" at index 0/);
    assertOne(validateReserve({ ...validReserve, pool: "no-slash" }), "pool", /has no "\/"/);
    assertOne(validateReserve({ ...validReserve, pool: "a/b/c" }), "pool", /second "\/"/);
  });

  test("units must be from 1 to 1,000,000", () => {
    for (const units of [0, -1, -2147483648]) {
      assertOne(validateReserve({ ...validReserve, units }), "units", /1 to 1,000,000, got -?\d+/);
    }
    assertOne(validateReserve({ ...validReserve, units: 1_000_001 }), "units", /got 1000001/);
    assertOne(validateReserve({ ...validReserve, units: 1.5 }), "units", /must be an integer/);
    assertOne(
      validateReserve({ ...validReserve, units: Number.NaN }),
      "units",
      /must be an integer/,
    );
  });

  test("request_id must be 1 to 128 printable ASCII characters", () => {
    assertOne(validateReserve({ ...validReserve, requestId: "" }), "request_id", /is empty/);
    assertOne(
      validateReserve({ ...validReserve, requestId: "x".repeat(129) }),
      "request_id",
      /129 characters long; the maximum is 128/,
    );
    assertOne(
      validateReserve({ ...validReserve, requestId: "ab\ncd" }),
      "request_id",
      /U\+000A\) at index 2/,
    );
    assertOne(
      validateReserve({ ...validReserve, requestId: "café" }),
      "request_id",
      /U\+00E9\) at index 3/,
    );
    assertOne(validateReserve({ ...validReserve, requestId: "a\u007f" }), "request_id", /U\+007F/);
  });

  test("every bad field of one request is reported, in field order", () => {
    const v = validateReserve({ pool: "", units: 0, requestId: "" });
    assert.deepEqual(
      v.map((x) => x.field),
      ["pool", "units", "request_id"],
    );
  });
});

describe("validateRelease", () => {
  const id = encodeReservationId("default/van-north", 7, "AAECAwQFBgcICQoLDA0ODw");

  test("an id Reserve could have returned has no violations", () => {
    assert.deepEqual(validateRelease({ reservationId: id }), []);
  });

  test("an empty reservation id is rejected", () => {
    assertOne(validateRelease({ reservationId: "" }), "reservation_id", /is empty/);
  });

  test("an oversized reservation id is rejected by its length", () => {
    assertOne(
      validateRelease({ reservationId: "r1.".padEnd(513, "a") }),
      "reservation_id",
      /513 characters long; the maximum is 512/,
    );
  });

  test("a malformed reservation id is rejected with the reason", () => {
    assertOne(
      validateRelease({ reservationId: "hello" }),
      "reservation_id",
      /does not start with "r2\."/,
    );
    assertOne(
      validateRelease({ reservationId: `${id.slice(0, -1)}+` }),
      "reservation_id",
      /the secret part is not 22 characters of canonical base64url/,
    );
  });

  test("a well-shaped id is not judged here: a wrong secret or r1 checksum is the owner's NOT_FOUND", () => {
    // The gateway cannot know a secret; saying "wrong checksum" would be an oracle.
    assert.deepEqual(validateRelease({ reservationId: `${id.slice(0, -2)}AA` }), []);
    assert.deepEqual(validateRelease({ reservationId: "r1.ZGVmYXVsdC9zbG90cw.ya.00000000" }), []);
  });
});

describe("validateGetPool", () => {
  test("a valid pool id has no violations and a bad one names the pool field", () => {
    assert.deepEqual(validateGetPool({ pool: "ns/name.with.dots" }), []);
    assertOne(validateGetPool({ pool: "ns/" }), "pool", /name is empty/);
  });
});

describe("validateGetAvailability", () => {
  test("the default request and a full valid request have no violations", () => {
    assert.deepEqual(validateGetAvailability(validAvailability), []);
    assert.deepEqual(
      validateGetAvailability({
        labelSelector: "zone=north,kind in (van,bike),!blocked",
        window: { start: { seconds: 100, nanos: 0 }, end: { seconds: 100, nanos: 1 } },
        minUnits: 1_000_000,
        pageSize: 1000,
        pageToken: encodePageToken("default/a"),
        includeClosed: true,
      }),
      [],
    );
  });

  test("a selector syntax error names its position", () => {
    assertOne(
      validateGetAvailability({ ...validAvailability, labelSelector: "zone in (a" }),
      "label_selector",
      /at position \d+ \(0-based\)/,
    );
    assertOne(
      validateGetAvailability({ ...validAvailability, labelSelector: "a=b,,c" }),
      "label_selector",
      /at position 4/,
    );
  });

  test("a selector longer than 1,024 characters is rejected by its length", () => {
    assertOne(
      validateGetAvailability({ ...validAvailability, labelSelector: "a".repeat(1025) }),
      "label_selector",
      /1025 characters long; the maximum is 1024/,
    );
  });

  test("a window must start before it ends", () => {
    const t = { seconds: 1_700_000_000, nanos: 5 };
    assertOne(
      validateGetAvailability({ ...validAvailability, window: { start: t, end: t } }),
      "window",
      /start must be before end/,
    );
    assertOne(
      validateGetAvailability({
        ...validAvailability,
        window: { start: t, end: { seconds: 1_600_000_000, nanos: 0 } },
      }),
      "window",
      /start must be before end/,
    );
  });

  test("a window needs both ends", () => {
    assertOne(
      validateGetAvailability({
        ...validAvailability,
        window: { start: { seconds: 1, nanos: 0 } },
      }),
      "window.end",
      /required/,
    );
  });

  test("timestamps must have nanos in range and seconds within RFC 3339", () => {
    const ok = { seconds: 0, nanos: 0 };
    assertOne(
      validateGetAvailability({
        ...validAvailability,
        window: { start: { seconds: 0, nanos: 1_000_000_000 }, end: { seconds: 5, nanos: 0 } },
      }),
      "window.start.nanos",
      /0 to 999999999, got 1000000000/,
    );
    assertOne(
      validateGetAvailability({
        ...validAvailability,
        window: { start: { seconds: 0, nanos: -1 }, end: { seconds: 5, nanos: 0 } },
      }),
      "window.start.nanos",
      /got -1/,
    );
    assertOne(
      validateGetAvailability({
        ...validAvailability,
        window: { start: ok, end: { seconds: MAX_TIMESTAMP_SECONDS + 1, nanos: 0 } },
      }),
      "window.end.seconds",
      /9999-12-31T23:59:59Z/,
    );
    assertOne(
      validateGetAvailability({
        ...validAvailability,
        window: { start: { seconds: MIN_TIMESTAMP_SECONDS - 1, nanos: 0 }, end: ok },
      }),
      "window.start.seconds",
      /0001-01-01T00:00:00Z/,
    );
  });

  test("min_units and page_size must be in range", () => {
    assertOne(
      validateGetAvailability({ ...validAvailability, minUnits: -1 }),
      "min_units",
      /got -1/,
    );
    assertOne(
      validateGetAvailability({ ...validAvailability, minUnits: 1_000_001 }),
      "min_units",
      /0 to 1,000,000/,
    );
    assertOne(
      validateGetAvailability({ ...validAvailability, pageSize: -5 }),
      "page_size",
      /got -5/,
    );
    assertOne(
      validateGetAvailability({ ...validAvailability, pageSize: 1001 }),
      "page_size",
      /0 to 1,000/,
    );
  });

  test("a page token this service did not issue is rejected", () => {
    assertOne(
      validateGetAvailability({ ...validAvailability, pageToken: "not a token!" }),
      "page_token",
      /base64url.*next_page_token/,
    );
    assertOne(
      validateGetAvailability({ ...validAvailability, pageToken: "x".repeat(600) }),
      "page_token",
      /600 characters long/,
    );
    // Valid base64url, but not a pool id inside.
    assertOne(
      validateGetAvailability({ ...validAvailability, pageToken: encodePageToken("nope") }),
      "page_token",
      /pool id/,
    );
  });
});

describe("validation never throws", () => {
  const anyString = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.string({ minLength: 100, maxLength: 1200 }),
    fc.constantFrom("default/a", "r1.", "a=b", "", "  ", "\u0000", "ns/na\u00efve"),
  );
  const anyInt = fc.oneof(
    fc.integer(),
    fc.constantFrom(0, -1, 1, 1_000_000, 1_000_001, 2 ** 31 - 1, -(2 ** 31)),
    fc.double(),
    fc.maxSafeInteger(),
  );
  const anyValue = fc.oneof(
    anyString,
    anyInt,
    fc.constant(undefined),
    fc.constant(null),
    fc.boolean(),
  );
  const anyTimestamp = fc.oneof(
    fc.record({ seconds: anyInt, nanos: anyInt }),
    fc.constant(undefined),
    anyValue,
  );

  const assertShape = (violations: FieldViolation[]): void => {
    assert.ok(Array.isArray(violations));
    for (const v of violations) {
      assert.equal(typeof v.field, "string");
      assert.ok(v.field.length > 0);
      assert.equal(typeof v.description, "string");
      assert.ok(v.description.length > 0 && v.description.length < 2000, v.description);
    }
  };

  test("arbitrary reserve, release and get-pool requests are valid or get violations", () => {
    fc.assert(
      fc.property(
        fc.record({ pool: anyValue, units: anyValue, requestId: anyValue }),
        anyValue,
        (r, raw) => {
          assertShape(validateReserve(r));
          assertShape(validateRelease({ reservationId: r.requestId }));
          assertShape(validateRelease({ reservationId: r.pool }));
          assertShape(validateGetPool({ pool: r.pool }));
          assertShape(validateReserve(raw));
          assertShape(validateRelease(raw));
          assertShape(validateGetPool(raw));
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("arbitrary availability requests are valid or get violations", () => {
    fc.assert(
      fc.property(
        fc.record({
          labelSelector: anyValue,
          window: fc.oneof(fc.record({ start: anyTimestamp, end: anyTimestamp }), anyValue),
          minUnits: anyValue,
          pageSize: anyValue,
          pageToken: anyValue,
          includeClosed: anyValue,
        }),
        (r) => assertShape(validateGetAvailability(r)),
      ),
      { numRuns: 2000 },
    );
  });

  test("valid random reserves have no violations", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.string({
          minLength: 1,
          maxLength: 128,
          unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
        }),
        (units, requestId) => {
          assert.deepEqual(validateReserve({ pool: "default/a", units, requestId }), []);
        },
      ),
    );
  });
});
