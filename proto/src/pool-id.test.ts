import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  assertPoolId,
  InvalidPoolIdError,
  MAX_POOL_ID_LENGTH,
  poolIdProblem,
  splitPoolId,
} from "./pool-id.js";

test("valid pool ids have no problem", () => {
  for (const id of [
    "default/slots",
    "a/b",
    "0/9",
    "team-a/seats.berlin-2025-06-01",
    "kube-system/x.y.z",
    `${"n".repeat(63)}/${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`,
  ]) {
    assert.equal(poolIdProblem(id), undefined, id);
  }
});

test("the longest valid pool id is 317 characters", () => {
  assert.equal(MAX_POOL_ID_LENGTH, 317);
  const longest = `${"n".repeat(63)}/${"a".repeat(253)}`;
  assert.equal(longest.length, 317);
  assert.equal(poolIdProblem(longest), undefined);
});

const cases: [id: string, message: string][] = [
  ["", 'pool id is empty; expected "<namespace>/<name>"'],
  ["default", 'pool id "default" has no "/"; expected "<namespace>/<name>"'],
  [
    "a/b/c",
    'pool id "a/b/c" has a second "/" at index 3; expected exactly one, between namespace and name',
  ],
  ["/b", 'namespace is empty; expected "<namespace>/<name>"'],
  ["a/", 'name is empty; expected "<namespace>/<name>"'],
  [
    `${"n".repeat(64)}/b`,
    `namespace "${"n".repeat(64)}" is 64 characters long; the maximum is 63 (an RFC 1123 label)`,
  ],
  [
    `a/${"b".repeat(254)}`,
    `name "${"b".repeat(80)}"… (254 characters) is 254 characters long; the maximum is 253 (an RFC 1123 subdomain)`,
  ],
  [
    `${"n".repeat(63)}/${"b".repeat(254)}`,
    `pool id "${"n".repeat(63)}/${"b".repeat(16)}"… (318 characters) is 318 characters long; the maximum is 317`,
  ],
  [
    "Default/b",
    'namespace "Default" has "D" at index 0; only lowercase letters a-z, digits 0-9 and "-" are allowed',
  ],
  [
    "a.b/c",
    'namespace "a.b" has "." at index 1; only lowercase letters a-z, digits 0-9 and "-" are allowed',
  ],
  [
    "-a/b",
    'namespace "-a" has "-" at index 0; namespace must start with a lowercase letter or digit',
  ],
  [
    "a-/b",
    'namespace "a-" has "-" at index 1; namespace must end with a lowercase letter or digit',
  ],
  [
    "a/b_c",
    'name "b_c" has "_" at index 1; only lowercase letters a-z, digits 0-9, "-" and "." are allowed',
  ],
  [
    "a/b c",
    'name "b c" has " " at index 1; only lowercase letters a-z, digits 0-9, "-" and "." are allowed',
  ],
  [
    "a/ü",
    'name "ü" has "ü" at index 0; only lowercase letters a-z, digits 0-9, "-" and "." are allowed',
  ],
  [
    "a/x\n",
    'name "x\\n" has "\\n" at index 1; only lowercase letters a-z, digits 0-9, "-" and "." are allowed',
  ],
  [
    "a/.b",
    'name ".b" has an empty "."-separated part at index 0; "." may not start or end a name or repeat',
  ],
  [
    "a/b.",
    'name "b." has an empty "."-separated part at index 2; "." may not start or end a name or repeat',
  ],
  [
    "a/b..c",
    'name "b..c" has an empty "."-separated part at index 2; "." may not start or end a name or repeat',
  ],
  [
    "a/b.-c",
    'name "b.-c" has "-" at index 2; each "."-separated part of a name must start with a lowercase letter or digit',
  ],
  [
    "a/b-.c",
    'name "b-.c" has "-" at index 1; each "."-separated part of a name must end with a lowercase letter or digit',
  ],
];

for (const [id, message] of cases) {
  test(`pool id ${JSON.stringify(id.length > 20 ? `${id.slice(0, 20)}…` : id)} is rejected with a precise message`, () => {
    assert.equal(poolIdProblem(id), message);
  });
}

test("a non-string pool id is reported, not thrown on", () => {
  assert.equal(poolIdProblem(42 as unknown as string), "pool id must be a string, got number");
});

test("splitPoolId returns the namespace and the name", () => {
  assert.deepEqual(splitPoolId("team-a/seats.berlin"), {
    namespace: "team-a",
    name: "seats.berlin",
  });
});

test("splitPoolId throws InvalidPoolIdError with the problem as reason", () => {
  assert.throws(
    () => splitPoolId("nope"),
    (e: unknown) => {
      assert.ok(e instanceof InvalidPoolIdError);
      assert.equal(e.name, "InvalidPoolIdError");
      assert.equal(e.id, "nope");
      assert.equal(e.reason, 'pool id "nope" has no "/"; expected "<namespace>/<name>"');
      assert.equal(
        e.message,
        'invalid pool id: pool id "nope" has no "/"; expected "<namespace>/<name>"',
      );
      return true;
    },
  );
  assert.throws(() => assertPoolId("A/b"), InvalidPoolIdError);
});

test("every valid pool id matches the Kubernetes name patterns and splits back to itself", () => {
  const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(..."ab0-./_A"), maxLength: 24 }), (id) => {
      const problem = poolIdProblem(id);
      const slash = id.indexOf("/");
      const ns = id.slice(0, slash);
      const name = id.slice(slash + 1);
      const expectedValid =
        slash >= 0 && !name.includes("/") && label.test(ns) && subdomain.test(name);
      assert.equal(problem === undefined, expectedValid, `${id}: ${problem}`);
      if (expectedValid) {
        const parts = splitPoolId(id);
        assert.equal(`${parts.namespace}/${parts.name}`, id);
      }
    }),
    { numRuns: 2000 },
  );
});
