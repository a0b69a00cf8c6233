// Validation of berth.dev objects as kube-apiserver would do it, for local mode:
// the structural schema (the CRD's, with kubectl's strict field validation: unknown
// fields are errors), the CEL rules (their local implementations), and the checks
// kube-apiserver makes on every object's metadata (names, namespaces, labels).
import {
  labelKeyProblem,
  labelValueProblem,
  MAX_NAME_LENGTH,
  MAX_NAMESPACE_LENGTH,
  parseRfc3339,
} from "@berth/proto";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { CAPACITY_POOL_KIND, capacityPoolSpecSchema } from "./capacity-pool.js";
import { API_VERSION } from "./group-version.js";
import { LOCAL_RULES } from "./local-rules.js";
import type { Schema } from "./openapi.js";

/** A path into an object: property names and list indexes. */
export type FieldPath = readonly (string | number)[];

/** One thing wrong with an object. */
export interface ObjectProblem {
  /** Where: `["spec", "capacity"]`; empty for the object itself. */
  readonly path: FieldPath;
  /** The path as users read it: `spec.capacity`, `metadata.labels["zone"]`. */
  readonly field: string;
  readonly message: string;
  /** True when the problem is the key itself (an unknown field), not its value. */
  readonly atKey: boolean;
}

const DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const MESSAGE = "x-berth-message";

// What kube-apiserver checks on the metadata of every namespaced object. It is not
// part of any CRD (a CRD cannot constrain metadata): kube-apiserver has it built in.
const metadataSchema = {
  type: "object",
  required: ["name"],
  properties: {
    name: {
      type: "string",
      maxLength: MAX_NAME_LENGTH,
      pattern: DNS_SUBDOMAIN,
      [MESSAGE]: `must be an RFC 1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most ${MAX_NAME_LENGTH} characters)`,
    },
    namespace: {
      type: "string",
      maxLength: MAX_NAMESPACE_LENGTH,
      pattern: DNS_LABEL,
      [MESSAGE]: `must be an RFC 1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most ${MAX_NAMESPACE_LENGTH} characters)`,
    },
    labels: { type: "object", additionalProperties: { type: "string" } },
    annotations: { type: "object", additionalProperties: { type: "string" } },
    generation: { type: "integer", minimum: 0 },
  },
} as const;

/** Adds kubectl's strict field validation: an object with `properties` allows no other key. */
function strict(schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = { ...schema };
  if (schema.properties !== undefined) {
    out.properties = Object.fromEntries(
      Object.entries(schema.properties).map(([k, v]) => [k, strict(v)]),
    );
    out.additionalProperties = false;
  }
  if (schema.items !== undefined) out.items = strict(schema.items);
  if (schema.additionalProperties !== undefined) {
    out.additionalProperties = strict(schema.additionalProperties);
  }
  return out;
}

function manifestSchema(spec: Schema): Record<string, unknown> {
  return {
    type: "object",
    required: ["metadata", "spec"],
    properties: {
      apiVersion: { type: "string" },
      kind: { type: "string" },
      metadata: { ...metadataSchema, additionalProperties: false },
      spec: strict(spec),
    },
    additionalProperties: false,
  };
}

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
  ajv.addFormat("date-time", (s: string) => parseRfc3339(s) !== undefined);
  ajv.addFormat("int32", { type: "number", validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat("int64", { type: "number", validate: (n: number) => Number.isSafeInteger(n) });
  for (const k of [
    MESSAGE,
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
  ]) {
    ajv.addKeyword(k);
  }
  return ajv;
}

let capacityPoolValidator: ValidateFunction | undefined;

/**
 * Validates a CapacityPool object (as parsed from YAML or JSON) the way `kubectl
 * apply` against a cluster with Berth's CRD would: the same fields are rejected for
 * the same reasons. `status` is refused outright (local mode has no status subresource
 * that would silently drop it). An object of another apiVersion or kind gets only that
 * problem: checking it against the CapacityPool schema would add noise.
 *
 * @returns every problem, in document order of the fields; empty when valid
 */
export function validateCapacityPool(object: unknown): ObjectProblem[] {
  if (!isPlainObject(object)) {
    return [problem([], `must be a mapping (a Kubernetes object), got ${describe(object)}`)];
  }
  const problems: ObjectProblem[] = [];
  if (object.apiVersion !== API_VERSION) {
    problems.push(
      problem(["apiVersion"], `must be "${API_VERSION}", got ${describe(object.apiVersion)}`),
    );
  }
  if (object.kind !== CAPACITY_POOL_KIND) {
    problems.push(
      problem(
        ["kind"],
        `must be "${CAPACITY_POOL_KIND}", got ${describe(object.kind)} (local mode applies only CapacityPool manifests; keep other resources in other files)`,
      ),
    );
    return problems;
  }
  capacityPoolValidator ??= newAjv().compile(manifestSchema(capacityPoolSpecSchema));
  const validate = capacityPoolValidator;
  if (!validate(object)) problems.push(...fromAjv(validate.errors ?? []));
  const failed = new Set(problems.map((p) => p.field));
  problems.push(...labelProblems(object.metadata));
  if (isPlainObject(object.spec)) {
    problems.push(
      ...ruleProblems(capacityPoolSpecSchema, object.spec, undefined, ["spec"], failed),
    );
  }
  return problems;
}

/**
 * Checks the CEL rules of a schema (their local implementations) on a value, for
 * every node whose own schema checks passed (kube-apiserver evaluates CEL only on
 * values of the right shape).
 *
 * @throws Error when a schema uses a rule with no local implementation
 */
export function ruleProblems(
  schema: Schema,
  value: unknown,
  oldValue: unknown,
  path: FieldPath,
  failed: ReadonlySet<string> = new Set(),
): ObjectProblem[] {
  const here = fieldName(path);
  const problems: ObjectProblem[] = [];
  const broken = [...failed].some(
    (f) => f === here || f.startsWith(`${here}.`) || f.startsWith(`${here}[`),
  );
  for (const r of broken ? [] : (schema["x-kubernetes-validations"] ?? [])) {
    const local = LOCAL_RULES[r.rule];
    if (local === undefined) {
      throw new Error(`CEL rule ${JSON.stringify(r.rule)} has no local implementation`);
    }
    if (!local(value, oldValue)) {
      const at = r.fieldPath === undefined ? path : [...path, ...r.fieldPath.split(".").slice(1)];
      problems.push(problem(at, r.message));
    }
  }
  if (schema.properties !== undefined && isPlainObject(value)) {
    for (const [k, child] of Object.entries(schema.properties)) {
      if (value[k] === undefined) continue;
      const old = isPlainObject(oldValue) ? oldValue[k] : undefined;
      problems.push(...ruleProblems(child, value[k], old, [...path, k], failed));
    }
  }
  return problems;
}

function labelProblems(metadata: unknown): ObjectProblem[] {
  if (!isPlainObject(metadata) || !isPlainObject(metadata.labels)) return [];
  const out: ObjectProblem[] = [];
  for (const [key, v] of Object.entries(metadata.labels)) {
    const why = labelKeyProblem(key) ?? (typeof v === "string" ? labelValueProblem(v) : undefined);
    if (why !== undefined) out.push(problem(["metadata", "labels", key], why));
  }
  return out;
}

function fromAjv(errors: readonly ErrorObject[]): ObjectProblem[] {
  const out = new Map<string, ObjectProblem>();
  for (const e of errors) {
    const path = pointerPath(e.instancePath);
    const node = (e.parentSchema ?? {}) as Schema & { [MESSAGE]?: string };
    let p: ObjectProblem;
    if (e.keyword === "required") {
      // Named after the missing field, located at its parent (where it should be).
      p = { ...problem([...path, String(e.params.missingProperty)], "is required"), path };
    } else if (e.keyword === "additionalProperties") {
      const key = String(e.params.additionalProperty);
      const hint =
        path.length === 0 && key === "status"
          ? "status is written by Berth, never by a manifest; remove it"
          : `allowed fields are ${Object.keys(node.properties ?? {}).join(", ")}`;
      p = { ...problem([...path, key], `unknown field (${hint})`), atKey: true };
      out.set(`${p.field}#key`, p);
      continue;
    } else {
      const got = describe(e.data);
      const expected =
        e.keyword !== "type" && node[MESSAGE] !== undefined
          ? node[MESSAGE]
          : `must be ${expectation(node)}`;
      const quote =
        node.type === "string" && (typeof e.data === "number" || typeof e.data === "boolean")
          ? ` (quote it: "${String(e.data)}")`
          : "";
      p = problem(path, `${expected}, got ${got}${quote}`);
    }
    if (!out.has(p.field)) out.set(p.field, p);
  }
  return [...out.values()];
}

function expectation(node: Schema): string {
  switch (node.type) {
    case "integer":
      if (node.minimum !== undefined && node.maximum !== undefined) {
        return `an integer between ${node.minimum} and ${node.maximum}`;
      }
      return node.minimum === undefined
        ? "an integer"
        : node.minimum === 0
          ? "a non-negative integer"
          : `an integer of at least ${node.minimum}`;
    case "boolean":
      return "true or false";
    case "string":
      if (node.format === "date-time") {
        return "an RFC 3339 timestamp such as 2025-06-02T08:00:00Z";
      }
      if (node.enum !== undefined) return `one of ${node.enum.map((v) => `"${v}"`).join(", ")}`;
      return node.maxLength === undefined
        ? "a string"
        : `a string of at most ${node.maxLength} characters`;
    case "object":
      if (node.additionalProperties !== undefined) return "a mapping of strings to strings";
      return node.required !== undefined && node.required.length > 1
        ? `a mapping with ${node.required.join(" and ")}`
        : "a mapping";
    case "array":
      return "a list";
    default:
      return "a value";
  }
}

function pointerPath(pointer: string): (string | number)[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function problem(path: FieldPath, message: string): ObjectProblem {
  return { path, field: fieldName(path), message, atKey: false };
}

/** Formats a path as users read it: `spec.window.end`, `metadata.labels["app/x"]`. */
export function fieldName(path: FieldPath): string {
  let out = "";
  for (const k of path) {
    if (typeof k === "number") out += `[${k}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) out += out === "" ? k : `.${k}`;
    else out += `[${JSON.stringify(k)}]`;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Describes a value in an error message: strings quoted, structures by their kind. */
export function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}
