// CapacityPool manifests → internal.PoolSpec, validated the way a strict CRD
// schema would validate them, so a file that works in local mode also applies to a
// cluster (and the other way round).
import { internal } from "@berth/proto";
import { type Document, isMap, isScalar, LineCounter, type Node, parseAllDocuments } from "yaml";
import { ManifestError, type ManifestProblem } from "./errors.js";

/** The only apiVersion local mode (and the CRD) accepts. */
export const CAPACITY_POOL_API_VERSION = "berth.dev/v1alpha1";
/** The only kind local mode accepts. */
export const CAPACITY_POOL_KIND = "CapacityPool";
/** Largest capacity: the int32 bound of `PoolSpec.capacity`. */
export const MAX_CAPACITY = 2_147_483_647;

/** A parsed CapacityPool: the spec to configure and where it was written. */
export interface PoolManifest {
  readonly spec: internal.PoolSpec;
  readonly file: string;
  /** 1-based document index in the file. */
  readonly document: number;
  /** 1-based line where the document starts. */
  readonly line: number;
}

const TOP_LEVEL_FIELDS = ["apiVersion", "kind", "metadata", "spec"] as const;
const METADATA_FIELDS = ["name", "namespace", "labels", "annotations", "generation"] as const;
const SPEC_FIELDS = ["capacity", "window", "closed"] as const;
const WINDOW_FIELDS = ["start", "end"] as const;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Parses every CapacityPool in a multi-document YAML text. Empty documents are
 * skipped (as kubectl does). Any other kind is rejected rather than ignored: local
 * mode applies only CapacityPools, and silently skipping a resource the author
 * meant to apply hides mistakes (a typo in `kind`, a Deployment in the wrong file).
 *
 * @param text the YAML text
 * @param file the file name used in error messages, as the user wrote it
 * @throws ManifestError listing every problem found in the file
 */
export function parseCapacityPools(text: string, file: string): PoolManifest[] {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const problems: ManifestProblem[] = [];
  const pools: PoolManifest[] = [];
  const seen = new Map<string, number>();
  if (!Array.isArray(documents)) {
    // An empty stream (only comments or nothing at all).
    return [];
  }
  documents.forEach((doc, i) => {
    const index = i + 1;
    const v = new DocumentValidator(file, index, doc, lineCounter, problems);
    const manifest = v.validate();
    if (manifest === undefined) return;
    const first = seen.get(manifest.spec.pool);
    if (first !== undefined) {
      v.problem(
        "metadata.name",
        `pool ${manifest.spec.pool} is already defined by document ${first}`,
        ["metadata", "name"],
      );
      return;
    }
    seen.set(manifest.spec.pool, index);
    pools.push(manifest);
  });
  if (problems.length > 0) throw new ManifestError(problems);
  return pools;
}

/**
 * Combines the pools of several files, rejecting a pool defined in more than one.
 *
 * @throws ManifestError naming both places a duplicated pool is defined
 */
export function mergePoolManifests(perFile: readonly (readonly PoolManifest[])[]): PoolManifest[] {
  const byPool = new Map<string, PoolManifest>();
  const problems: ManifestProblem[] = [];
  for (const manifests of perFile) {
    for (const m of manifests) {
      const first = byPool.get(m.spec.pool);
      if (first !== undefined) {
        problems.push({
          file: m.file,
          document: m.document,
          path: "metadata.name",
          message: `pool ${m.spec.pool} is already defined in ${first.file}: document ${first.document}`,
          line: m.line,
        });
        continue;
      }
      byPool.set(m.spec.pool, m);
    }
  }
  if (problems.length > 0) throw new ManifestError(problems);
  return [...byPool.values()];
}

class DocumentValidator {
  constructor(
    private readonly file: string,
    private readonly index: number,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
    private readonly problems: ManifestProblem[],
  ) {}

  problem(
    path: string,
    message: string,
    yamlPath: readonly (string | number)[] = [],
    atKey = false,
  ): void {
    const line = this.lineOf(yamlPath, atKey);
    this.problems.push({
      file: this.file,
      document: this.index,
      path,
      message,
      ...(line === undefined ? {} : { line }),
    });
  }

  private lineOf(yamlPath: readonly (string | number)[], atKey: boolean): number | undefined {
    const lookups: (() => unknown)[] = [
      // Unknown fields point at their key, everything else at its value; a
      // missing field points at its parent.
      () => (atKey ? this.keyNode(yamlPath) : undefined),
      () => this.doc.getIn(yamlPath, true),
      () => this.keyNode(yamlPath),
      () => this.doc.getIn(yamlPath.slice(0, -1), true),
    ];
    let node: Node | undefined | null = yamlPath.length === 0 ? this.doc.contents : undefined;
    for (const lookup of yamlPath.length === 0 ? [] : lookups) {
      node = lookup() as Node | undefined;
      if (node?.range) break;
    }
    const offset = node?.range?.[0];
    return offset === undefined ? undefined : this.lines.linePos(offset).line;
  }

  private keyNode(yamlPath: readonly (string | number)[]): unknown {
    const parent =
      yamlPath.length === 1 ? this.doc.contents : this.doc.getIn(yamlPath.slice(0, -1), true);
    if (!isMap(parent)) return undefined;
    const last = yamlPath[yamlPath.length - 1];
    return parent.items.find((p) => isScalar(p.key) && p.key.value === last)?.key;
  }

  validate(): PoolManifest | undefined {
    if (this.doc.errors.length > 0) {
      for (const e of this.doc.errors) {
        const first = e.message.split("\n")[0]?.replace(/:$/, "") ?? e.message;
        const line = e.linePos?.[0]?.line;
        this.problems.push({
          file: this.file,
          document: this.index,
          path: "",
          message: `invalid YAML: ${first.replace(/ at line \d+, column \d+$/, "")}`,
          ...(line === undefined ? {} : { line }),
        });
      }
      return undefined;
    }
    const root: unknown = this.doc.toJS();
    if (root === null || root === undefined) return undefined; // empty document
    const before = this.problems.length;
    if (!isPlainObject(root)) {
      this.problem("", `must be a mapping (a Kubernetes object), got ${describe(root)}`);
      return undefined;
    }
    if (root.apiVersion !== CAPACITY_POOL_API_VERSION) {
      this.problem(
        "apiVersion",
        `must be "${CAPACITY_POOL_API_VERSION}", got ${describe(root.apiVersion)}`,
        ["apiVersion"],
      );
    }
    if (root.kind !== CAPACITY_POOL_KIND) {
      this.problem(
        "kind",
        `must be "${CAPACITY_POOL_KIND}", got ${describe(root.kind)} (local mode applies only CapacityPool manifests; keep other resources in other files)`,
        ["kind"],
      );
      // Validating the rest against the CapacityPool schema would only add noise.
      return undefined;
    }
    this.unknownFields(root, TOP_LEVEL_FIELDS, "", []);
    const meta = this.metadata(root.metadata);
    const spec = this.spec(root.spec);
    if (this.problems.length > before || meta === undefined || spec === undefined) return undefined;
    const contentsStart = this.doc.contents?.range?.[0] ?? 0;
    return {
      spec: internal.PoolSpec.fromPartial({
        pool: `${meta.namespace}/${meta.name}`,
        capacity: spec.capacity,
        labels: meta.labels,
        window: spec.window,
        closed: spec.closed,
        generation: meta.generation,
      }),
      file: this.file,
      document: this.index,
      line: this.lines.linePos(contentsStart).line,
    };
  }

  private metadata(value: unknown):
    | {
        name: string;
        namespace: string;
        labels: Record<string, string>;
        generation: number;
      }
    | undefined {
    if (value === undefined) {
      this.problem("metadata", "is required");
      return undefined;
    }
    if (!isPlainObject(value)) {
      this.problem("metadata", `must be a mapping, got ${describe(value)}`, ["metadata"]);
      return undefined;
    }
    this.unknownFields(value, METADATA_FIELDS, "metadata", ["metadata"]);
    let name = "";
    if (value.name === undefined) {
      this.problem("metadata.name", "is required", ["metadata"]);
    } else if (typeof value.name !== "string") {
      this.problem("metadata.name", `must be a string, got ${describe(value.name)}`, [
        "metadata",
        "name",
      ]);
    } else if (value.name.length > 253 || !DNS_SUBDOMAIN.test(value.name)) {
      this.problem(
        "metadata.name",
        `must be an RFC 1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters), got ${describe(value.name)}`,
        ["metadata", "name"],
      );
    } else {
      name = value.name;
    }
    let namespace = "default";
    if (value.namespace !== undefined) {
      if (typeof value.namespace !== "string") {
        this.problem("metadata.namespace", `must be a string, got ${describe(value.namespace)}`, [
          "metadata",
          "namespace",
        ]);
      } else if (value.namespace.length > 63 || !DNS_LABEL.test(value.namespace)) {
        this.problem(
          "metadata.namespace",
          `must be an RFC 1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), got ${describe(value.namespace)}`,
          ["metadata", "namespace"],
        );
      } else {
        namespace = value.namespace;
      }
    }
    const labels = this.labels(value.labels);
    if (value.annotations !== undefined) {
      this.stringMap(value.annotations, "metadata.annotations", ["metadata", "annotations"]);
    }
    let generation = 0;
    if (value.generation !== undefined) {
      if (
        typeof value.generation !== "number" ||
        !Number.isSafeInteger(value.generation) ||
        value.generation < 0
      ) {
        this.problem(
          "metadata.generation",
          `must be a non-negative integer, got ${describe(value.generation)}`,
          ["metadata", "generation"],
        );
      } else {
        generation = value.generation;
      }
    }
    return { name, namespace, labels, generation };
  }

  private labels(value: unknown): Record<string, string> {
    if (value === undefined || value === null) return {};
    const map = this.stringMap(value, "metadata.labels", ["metadata", "labels"]);
    const labels: Record<string, string> = {};
    for (const [key, v] of Object.entries(map)) {
      const path = `metadata.labels${fieldKey(key)}`;
      const at = ["metadata", "labels", key];
      const keyProblem = labelKeyProblem(key);
      if (keyProblem !== undefined) {
        this.problem(path, keyProblem, at);
        continue;
      }
      if (v.length > 63 || (v !== "" && !LABEL_NAME.test(v))) {
        this.problem(
          path,
          `label value must be empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit, got ${describe(v)}`,
          at,
        );
        continue;
      }
      labels[key] = v;
    }
    return labels;
  }

  private stringMap(
    value: unknown,
    path: string,
    at: readonly (string | number)[],
  ): Record<string, string> {
    if (!isPlainObject(value)) {
      this.problem(path, `must be a mapping of strings to strings, got ${describe(value)}`, at);
      return {};
    }
    const out: Record<string, string> = {};
    for (const [key, v] of Object.entries(value)) {
      if (typeof v !== "string") {
        this.problem(
          `${path}${fieldKey(key)}`,
          `must be a string, got ${describe(v)} (quote it: "${String(v)}")`,
          [...at, key],
        );
        continue;
      }
      out[key] = v;
    }
    return out;
  }

  private spec(value: unknown):
    | {
        capacity: number;
        window: internal.PoolSpec["window"];
        closed: boolean;
      }
    | undefined {
    if (value === undefined) {
      this.problem("spec", "is required");
      return undefined;
    }
    if (!isPlainObject(value)) {
      this.problem("spec", `must be a mapping, got ${describe(value)}`, ["spec"]);
      return undefined;
    }
    this.unknownFields(value, SPEC_FIELDS, "spec", ["spec"]);
    let capacity = 0;
    if (value.capacity === undefined) {
      this.problem("spec.capacity", "is required", ["spec"]);
    } else if (
      typeof value.capacity !== "number" ||
      !Number.isInteger(value.capacity) ||
      value.capacity < 0 ||
      value.capacity > MAX_CAPACITY
    ) {
      this.problem(
        "spec.capacity",
        `must be an integer between 0 and ${MAX_CAPACITY}, got ${describe(value.capacity)}`,
        ["spec", "capacity"],
      );
    } else {
      capacity = value.capacity;
    }
    let closed = false;
    if (value.closed !== undefined) {
      if (typeof value.closed !== "boolean") {
        this.problem("spec.closed", `must be true or false, got ${describe(value.closed)}`, [
          "spec",
          "closed",
        ]);
      } else {
        closed = value.closed;
      }
    }
    const window = value.window === undefined ? undefined : this.window(value.window);
    return { capacity, window, closed };
  }

  private window(value: unknown): internal.PoolSpec["window"] {
    if (!isPlainObject(value)) {
      this.problem("spec.window", `must be a mapping with start and end, got ${describe(value)}`, [
        "spec",
        "window",
      ]);
      return undefined;
    }
    this.unknownFields(value, WINDOW_FIELDS, "spec.window", ["spec", "window"]);
    const bound = (field: "start" | "end") => {
      const raw = value[field];
      const path = `spec.window.${field}`;
      if (raw === undefined) {
        this.problem(path, "is required", ["spec", "window"]);
        return undefined;
      }
      const ts = typeof raw === "string" ? parseRfc3339(raw) : undefined;
      if (ts === undefined) {
        this.problem(
          path,
          `must be an RFC 3339 timestamp such as 2025-06-02T08:00:00Z, got ${describe(raw)}`,
          ["spec", "window", field],
        );
      }
      return ts;
    };
    const start = bound("start");
    const end = bound("end");
    if (start === undefined || end === undefined) return undefined;
    if (compareTimestamps(end, start) <= 0) {
      this.problem(
        "spec.window.end",
        `must be after spec.window.start (${String(value.start)}), got ${String(value.end)}`,
        ["spec", "window", "end"],
      );
      return undefined;
    }
    return { start, end };
  }

  private unknownFields(
    value: Record<string, unknown>,
    allowed: readonly string[],
    path: string,
    at: readonly (string | number)[],
  ): void {
    for (const key of Object.keys(value)) {
      if (allowed.includes(key)) continue;
      const hint =
        path === "" && key === "status"
          ? "status is written by Berth, never by a manifest; remove it"
          : `allowed fields are ${allowed.join(", ")}`;
      this.problem(
        path === "" ? key : `${path}${fieldKey(key)}`,
        `unknown field (${hint})`,
        [...at, key],
        true,
      );
    }
  }
}

/** Timestamp as in `google.protobuf.Timestamp` (seconds since the epoch, nanos). */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

/**
 * Parses an RFC 3339 timestamp (`2025-06-02T08:00:00Z`, `…T10:00:00.5+02:00`) to
 * seconds and nanos without losing sub-millisecond digits.
 *
 * @returns the timestamp, or undefined when the text is not RFC 3339 or names a
 *   day or time that does not exist
 */
export function parseRfc3339(text: string): Timestamp | undefined {
  const m = RFC3339.exec(text);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) {
    return undefined;
  }
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const d = new Date(ms);
  if (d.getUTCDate() !== day || d.getUTCMonth() !== month - 1) return undefined;
  let offset = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offset = (m[9] === "-" ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const nanos = m[7] === undefined ? 0 : Number(m[7].padEnd(9, "0"));
  return { seconds: ms / 1000 - offset, nanos };
}

function compareTimestamps(a: Timestamp, b: Timestamp): number {
  return a.seconds === b.seconds ? a.nanos - b.nanos : a.seconds - b.seconds;
}

/** Why a label key is invalid, or undefined when it is valid (Kubernetes rules). */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return `label key prefix must be an RFC 1123 subdomain of at most 253 characters, got ${describe(prefix)}`;
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return `label key name must be 1 to 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit, got ${describe(name)}`;
  }
  return undefined;
}

function fieldKey(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Map);
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}
