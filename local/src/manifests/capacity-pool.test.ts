import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_CAPACITY } from "@berth/proto";
import { ManifestError, mergePoolManifests, parseCapacityPools } from "./index.js";

const pool = (body: string) =>
  `apiVersion: berth.dev/v1alpha1\nkind: CapacityPool\n${body.trim()}\n`;

function problemsOf(text: string, file = "pools.yaml"): string[] {
  try {
    parseCapacityPools(text, file);
  } catch (e: unknown) {
    assert.ok(e instanceof ManifestError, `expected a ManifestError, got ${String(e)}`);
    assert.equal(e.name, "ManifestError");
    return e.message.split("\n");
  }
  assert.fail("expected the manifests to be rejected");
}

test("a full CapacityPool becomes a PoolSpec with the pool id namespace/name", () => {
  const [m, ...rest] = parseCapacityPools(
    pool(`
metadata:
  name: north-2025-06-02-morning
  namespace: delivery
  generation: 3
  labels:
    zone: north
    app.kubernetes.io/part-of: berth
spec:
  capacity: 40
  window:
    start: 2025-06-02T08:00:00Z
    end: "2025-06-02T12:00:00.250+02:00"
  closed: false
`),
    "pools.yaml",
  );
  assert.equal(rest.length, 0);
  assert.deepEqual(m, {
    file: "pools.yaml",
    document: 1,
    line: 1,
    spec: {
      pool: "delivery/north-2025-06-02-morning",
      capacity: 40,
      labels: { zone: "north", "app.kubernetes.io/part-of": "berth" },
      window: {
        start: { seconds: Date.UTC(2025, 5, 2, 8) / 1000, nanos: 0 },
        end: { seconds: Date.UTC(2025, 5, 2, 10) / 1000, nanos: 250_000_000 },
      },
      closed: false,
      generation: 3,
      deleted: false,
    },
  });
});

test("the namespace defaults to default and optional fields take their zero values", () => {
  const [m] = parseCapacityPools(pool("metadata: {name: seats}\nspec: {capacity: 0}"), "f");
  assert.deepEqual(m?.spec, {
    pool: "default/seats",
    capacity: 0,
    labels: {},
    window: undefined,
    closed: false,
    generation: 0,
    deleted: false,
  });
});

test("several documents are read in order and empty documents are skipped", () => {
  const text = [
    `# leading comment\n${pool("metadata: {name: a}\nspec: {capacity: 1}")}`,
    "",
    pool("metadata: {name: b}\nspec: {capacity: 2, closed: true}"),
    "",
  ].join("---\n");
  const pools = parseCapacityPools(text, "f");
  assert.deepEqual(
    pools.map((p) => [p.spec.pool, p.document, p.spec.closed]),
    [
      ["default/a", 1, false],
      ["default/b", 3, true],
    ],
  );
});

test("a file with only comments holds no pools", () => {
  assert.deepEqual(parseCapacityPools("# nothing here\n", "f"), []);
  assert.deepEqual(parseCapacityPools("", "f"), []);
});

test("a negative capacity is rejected with file, document index, field path and value", () => {
  const text = [
    pool("metadata: {name: a}\nspec: {capacity: 1}"),
    pool("metadata: {name: b}\nspec: {capacity: 1}"),
    pool("metadata:\n  name: c\nspec:\n  capacity: -5"),
  ].join("---\n");
  assert.deepEqual(problemsOf(text, "examples/pools.yaml"), [
    "examples/pools.yaml: document 3: spec.capacity: must be an integer between 0 and 2147483647, got -5 (line 16)",
  ]);
});

test("capacity must be an integer within int32, not a string or a fraction", () => {
  const bad = (v: string) => problemsOf(pool(`metadata: {name: a}\nspec: {capacity: ${v}}`))[0];
  assert.match(bad(`${MAX_CAPACITY + 1}`) ?? "", /spec\.capacity: .* got 2147483648/);
  assert.match(bad("1.5") ?? "", /spec\.capacity: .* got 1\.5/);
  assert.match(bad('"10"') ?? "", /spec\.capacity: .* got "10"/);
  assert.deepEqual(problemsOf(pool("metadata: {name: a}\nspec: {}")), [
    "pools.yaml: document 1: spec.capacity: is required (line 4)",
  ]);
});

test("unknown fields are rejected at every level, like a strict CRD schema", () => {
  assert.deepEqual(
    problemsOf(
      pool(`
metadata:
  name: a
  uid: x
spec:
  capacity: 1
  capcity: 2
  window: {start: 2025-06-02T08:00:00Z, end: 2025-06-02T09:00:00Z, tz: UTC}
status:
  reserved: 1
`),
    ),
    [
      "pools.yaml: document 1: metadata.uid: unknown field (allowed fields are name, namespace, labels, annotations, generation) (line 5)",
      "pools.yaml: document 1: spec.capcity: unknown field (allowed fields are capacity, window, closed) (line 8)",
      "pools.yaml: document 1: spec.window.tz: unknown field (allowed fields are start, end) (line 9)",
      "pools.yaml: document 1: status: unknown field (status is written by Berth, never by a manifest; remove it) (line 10)",
    ],
  );
});

test("another kind or apiVersion is rejected with a clear message, not ignored", () => {
  const text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n";
  assert.deepEqual(problemsOf(text), [
    'pools.yaml: document 1: apiVersion: must be "berth.dev/v1alpha1", got "v1" (line 1)',
    'pools.yaml: document 1: kind: must be "CapacityPool", got "ConfigMap" (local mode applies only CapacityPool manifests; keep other resources in other files) (line 2)',
  ]);
});

test("names, namespaces and labels follow the Kubernetes rules", () => {
  const problems = problemsOf(
    pool(`
metadata:
  name: North_Slot
  namespace: a.b
  labels:
    zone: north
    "bad key!": x
    day: -monday
    count: 5
spec: {capacity: 1}
`),
  );
  assert.equal(problems.length, 5);
  assert.match(
    problems[0] ?? "",
    /^pools\.yaml: document 1: metadata\.name: must be an RFC 1123 subdomain .* got "North_Slot" \(line 4\)$/,
  );
  assert.match(
    problems[1] ?? "",
    /^pools\.yaml: document 1: metadata\.namespace: must be an RFC 1123 label .* got "a\.b" \(line 5\)$/,
  );
  // Top to bottom in the file.
  assert.match(problems[2] ?? "", /metadata\.labels\["bad key!"\]: label key name .* \(line 8\)$/);
  assert.match(
    problems[3] ?? "",
    /metadata\.labels\.day: label value "-monday" must .* \(line 9\)$/,
  );
  assert.match(
    problems[4] ?? "",
    /metadata\.labels\.count: must be a string, got 5 \(quote it: "5"\) \(line 10\)$/,
  );
});

test("a window needs RFC 3339 start and end, with end after start", () => {
  const w = (start: string, end: string) =>
    problemsOf(
      pool(`metadata: {name: a}\nspec:\n  capacity: 1\n  window: {start: ${start}, end: ${end}}`),
    );
  assert.deepEqual(w("2025-06-02T10:00:00Z", "2025-06-02T10:00:00Z"), [
    "pools.yaml: document 1: spec.window.end: must be after spec.window.start (line 6)",
  ]);
  assert.match(
    w("2025-06-02", "2025-06-02T10:00:00Z")[0] ?? "",
    /spec\.window\.start: must be an RFC 3339 timestamp .* got "2025-06-02"/,
  );
  assert.match(
    w("2025-02-30T10:00:00Z", "2025-06-02T10:00:00Z")[0] ?? "",
    /spec\.window\.start: must be an RFC 3339/,
  );
  assert.deepEqual(
    problemsOf(
      pool("metadata: {name: a}\nspec:\n  capacity: 1\n  window: {start: 2025-06-02T10:00:00Z}"),
    ),
    ["pools.yaml: document 1: spec.window.end: is required (line 6)"],
  );
});

test("closed must be a boolean", () => {
  assert.deepEqual(problemsOf(pool('metadata: {name: a}\nspec: {capacity: 1, closed: "yes"}')), [
    'pools.yaml: document 1: spec.closed: must be true or false, got "yes" (line 4)',
  ]);
});

test("YAML syntax errors and duplicate keys name the document and the line", () => {
  const problems = problemsOf(`${pool("metadata: {name: a}\nspec: {capacity: 1}")}---\nspec: [\n`);
  assert.equal(problems.length, 1);
  assert.match(problems[0] ?? "", /^pools\.yaml: document 2: invalid YAML: .* \(line \d+\)$/);
  assert.deepEqual(
    problemsOf(pool("metadata: {name: a}\nspec: {capacity: 1}\nspec: {capacity: 2}")),
    ["pools.yaml: document 1: invalid YAML: Map keys must be unique (line 5)"],
  );
});

test("a document that is not a mapping is rejected", () => {
  assert.deepEqual(problemsOf("- a\n- b\n"), [
    "pools.yaml: document 1: must be a mapping (a Kubernetes object), got a list (line 1)",
  ]);
});

test("every problem of a file is reported, not only the first", () => {
  const text = [
    pool("metadata: {name: a}\nspec: {capacity: -1}"),
    pool("metadata: {name: b}\nspec: {capacity: x}"),
  ].join("---\n");
  assert.equal(problemsOf(text).length, 2);
});

test("a pool defined twice is rejected, within a file and across files", () => {
  const a = pool("metadata: {name: a}\nspec: {capacity: 1}");
  assert.deepEqual(problemsOf(`${a}---\n${a}`), [
    "pools.yaml: document 2: metadata.name: pool default/a is already defined by document 1 (line 8)",
  ]);
  const one = parseCapacityPools(a, "one.yaml");
  const two = parseCapacityPools(
    `${pool("metadata: {name: b}\nspec: {capacity: 1}")}---\n${a}`,
    "two.yaml",
  );
  assert.throws(() => mergePoolManifests([one, two]), {
    name: "ManifestError",
    message:
      "two.yaml: document 2: metadata.name: pool default/a is already defined in one.yaml: document 1 (line 6)",
  });
});
