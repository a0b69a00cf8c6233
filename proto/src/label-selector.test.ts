import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { LabelRequirement, LabelSelector } from "./label-selector.js";
import {
  formatLabelSelector,
  LabelSelectorSyntaxError,
  labelKeyProblem,
  labelValueProblem,
  MAX_LABEL_SELECTOR_LENGTH,
  matchesLabels,
  parseLabelSelector,
} from "./label-selector.js";

const matches = (selector: string, labels: Record<string, string>) =>
  matchesLabels(parseLabelSelector(selector), labels);

function assertSyntaxError(text: string, position: number, problem: string): void {
  assert.throws(
    () => parseLabelSelector(text),
    (e: unknown) => {
      assert.ok(e instanceof LabelSelectorSyntaxError);
      assert.equal(e.name, "LabelSelectorSyntaxError");
      assert.equal(e.selector, text);
      assert.equal(e.position, position);
      assert.equal(
        e.message,
        `invalid label selector ${JSON.stringify(text)} at position ${position}: ${problem}`,
      );
      return true;
    },
  );
}

describe("parseLabelSelector", () => {
  test("every operator parses to its requirement", () => {
    assert.deepEqual(
      parseLabelSelector("a=1,b==2,c!=3,d in (y,x,x),e notin (z),f,!g").requirements,
      [
        { op: "=", key: "a", value: "1" },
        { op: "=", key: "b", value: "2" },
        { op: "!=", key: "c", value: "3" },
        { op: "in", key: "d", values: ["x", "y"] },
        { op: "notin", key: "e", values: ["z"] },
        { op: "exists", key: "f" },
        { op: "!exists", key: "g" },
      ],
    );
  });

  test("whitespace around every token is ignored", () => {
    assert.deepEqual(
      parseLabelSelector("  a = 1 ,\tb in( x , y ) , ! c , d  ").requirements,
      parseLabelSelector("a=1,b in (x,y),!c,d").requirements,
    );
  });

  test("an empty or blank selector has no requirements and matches everything", () => {
    assert.deepEqual(parseLabelSelector(""), { requirements: [] });
    assert.deepEqual(parseLabelSelector("   "), { requirements: [] });
    assert.equal(matches("", {}), true);
  });

  test("values may be empty, as in Kubernetes", () => {
    assert.deepEqual(parseLabelSelector("a=,b in (x,)").requirements, [
      { op: "=", key: "a", value: "" },
      { op: "in", key: "b", values: ["", "x"] },
    ]);
    assert.deepEqual(parseLabelSelector("a in (,)").requirements, [
      { op: "in", key: "a", values: [""] },
    ]);
  });

  test("prefixed keys are accepted", () => {
    assert.deepEqual(parseLabelSelector("berth.dev/zone=eu-1").requirements, [
      { op: "=", key: "berth.dev/zone", value: "eu-1" },
    ]);
  });

  test("a selector at the length limit parses and one over it is rejected", () => {
    const text = `${"a=1,".repeat(255)}a=12`;
    assert.equal(text.length, MAX_LABEL_SELECTOR_LENGTH);
    assert.doesNotThrow(() => parseLabelSelector(text));
    const long = `${text}x`;
    assert.throws(
      () => parseLabelSelector(long),
      (e: unknown) =>
        e instanceof LabelSelectorSyntaxError &&
        e.position === 1024 &&
        e.selector === long &&
        e.message ===
          `invalid label selector ${JSON.stringify(`${long.slice(0, 100)}…`)} at position 1024: selector is 1025 characters; at most 1024 allowed`,
    );
  });

  const errors: [string, number, string][] = [
    ["a=1,", 4, "expected a requirement after ','"],
    [",a", 0, "expected a label key, found ','"],
    ["a=1 b=2", 4, "expected ',' or end of selector, found 'b'"],
    ["a in ()", 6, "a set of values must not be empty"],
    ["a in x", 5, "expected '(', found 'x'"],
    ["a in (x", 7, "expected ',' or ')', found end of selector"],
    ["a in (x y)", 8, "expected ',' or ')', found 'y'"],
    ["a notin", 7, "expected '(', found end of selector"],
    ["!a=1", 2, "expected ',' or end of selector, found '='"],
    ["a (x)", 2, "expected '=', '==', '!=', 'in', 'notin', ',' or end of selector, found '('"],
    ["a>1", 1, "operator '>' is not supported"],
    ["a=b=c", 3, "expected ',' or end of selector, found '='"],
    [
      "-a=1",
      0,
      `label key name "-a" must consist of alphanumerics, '-', '_' or '.', starting and ending alphanumeric`,
    ],
    [
      "Berth.dev/a",
      0,
      `label key prefix "Berth.dev" is not a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.', starting and ending alphanumeric)`,
    ],
    ["/a", 0, `label key "/a" has an empty prefix`],
    ["a/", 0, `label key "a/" has an empty name`],
    [
      "a/b/c",
      0,
      `label key name "b/c" must consist of alphanumerics, '-', '_' or '.', starting and ending alphanumeric`,
    ],
    [
      "a=x_",
      2,
      `label value "x_" must consist of alphanumerics, '-', '_' or '.', starting and ending alphanumeric`,
    ],
    [`a=${"v".repeat(64)}`, 2, "label value is 64 characters; at most 63 allowed"],
    [`${"k".repeat(64)}`, 0, "label key name is 64 characters; at most 63 allowed"],
  ];
  for (const [text, position, problem] of errors) {
    test(`${JSON.stringify(text)} is rejected at position ${position}`, () => {
      assertSyntaxError(text, position, problem);
    });
  }
});

describe("matchesLabels", () => {
  const labels = { zone: "eu", tier: "gold", empty: "" };
  const cases: [string, boolean][] = [
    ["zone=eu", true],
    ["zone==eu", true],
    ["zone=us", false],
    ["zone!=us", true],
    ["zone!=eu", false],
    ["missing!=x", true],
    ["zone in (us,eu)", true],
    ["zone in (us)", false],
    ["missing in (x)", false],
    ["zone notin (us)", true],
    ["zone notin (eu)", false],
    ["missing notin (x)", true],
    ["zone", true],
    ["missing", false],
    ["!zone", false],
    ["!missing", true],
    ["empty=", true],
    ["empty", true],
    ["zone=eu,tier=gold", true],
    ["zone=eu,tier=silver", false],
  ];
  for (const [selector, expected] of cases) {
    test(`${JSON.stringify(selector)} ${expected ? "matches" : "does not match"} the label set`, () => {
      assert.equal(matches(selector, labels), expected);
    });
  }

  test("keys named like Object.prototype members are not found on a plain label set", () => {
    assert.equal(matches("constructor", {}), false);
    assert.equal(matches("!toString", {}), true);
    assert.equal(matches("constructor notin (x)", {}), true);
  });
});

describe("label key and value checks", () => {
  test("a prefix longer than 253 characters is rejected", () => {
    assert.equal(
      labelKeyProblem(`${"a".repeat(254)}/x`),
      "label key prefix is 254 characters; at most 253 allowed",
    );
  });

  test("the empty value is valid", () => {
    assert.equal(labelValueProblem(""), undefined);
  });
});

// ---- properties ---------------------------------------------------------------

const alnum = fc.constantFrom(..."abcXYZ019");
const middle = fc.constantFrom(..."aZ9-_.");
const nameArb = fc
  .tuple(alnum, fc.string({ unit: middle, maxLength: 10 }), alnum)
  .map(([a, m, b]) => (m.length === 0 && a === b ? a : `${a}${m}${b}`));
const prefixArb = fc
  .array(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?$/), { minLength: 1, maxLength: 3 })
  .map((parts) => parts.join("."));
const keyArb = fc.oneof(
  nameArb,
  fc.tuple(prefixArb, nameArb).map(([p, n]) => `${p}/${n}`),
);
const valueArb = fc.oneof(fc.constant(""), nameArb);
const requirementArb: fc.Arbitrary<LabelRequirement> = fc
  .oneof(
    fc.record({ op: fc.constantFrom("=" as const, "!=" as const), key: keyArb, value: valueArb }),
    fc.record({
      op: fc.constantFrom("in" as const, "notin" as const),
      key: keyArb,
      values: fc.uniqueArray(valueArb, { minLength: 1, maxLength: 4 }).map((v) => v.sort()),
    }),
    fc.record({ op: fc.constantFrom("exists" as const, "!exists" as const), key: keyArb }),
  )
  // fast-check records have a null prototype; the parser builds plain objects.
  .map((r) => ({ ...r }));
const selectorArb: fc.Arbitrary<LabelSelector> = fc
  .array(requirementArb, { maxLength: 5 })
  .map((requirements) => ({ requirements }));

describe("properties", () => {
  test("formatting a selector then parsing it gives the same selector", () => {
    fc.assert(
      fc.property(selectorArb, (selector) => {
        assert.deepEqual(parseLabelSelector(formatLabelSelector(selector)), selector);
      }),
      { numRuns: 500 },
    );
  });

  test("!k matches exactly the label sets k does not, and likewise != / notin negate = / in", () => {
    const labelsArb = fc.dictionary(
      fc.constantFrom("a", "b", "x.io/c"),
      fc.constantFrom("", "1", "2"),
    );
    fc.assert(
      fc.property(
        fc.constantFrom("a", "b", "x.io/c"),
        fc.constantFrom("", "1", "2"),
        labelsArb,
        (key, value, labels) => {
          const m = (s: string) => matches(s, labels);
          assert.equal(m(`!${key}`), !m(key));
          assert.equal(m(`${key}!=${value}`), !m(`${key}=${value}`));
          assert.equal(m(`${key} notin (${value},2)`), !m(`${key} in (${value},2)`));
        },
      ),
      { numRuns: 300 },
    );
  });
});
