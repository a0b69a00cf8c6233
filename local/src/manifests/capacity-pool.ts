// CapacityPool manifests → internal.PoolSpec. Validation is the operator API's
// (the CRD's schema with kubectl's strict field validation, its CEL rules and
// kube-apiserver's metadata checks), so a file that works in local mode also applies
// to a cluster, and the other way round. This file adds YAML: documents, lines.
import {
  API_VERSION,
  CAPACITY_POOL_KIND,
  type CapacityPool,
  type ObjectProblem,
  poolSpecOf,
  validateCapacityPool,
} from "@berth/kubernetes";
import type { internal } from "@berth/proto";
import { Composer, type Document, isMap, isScalar, LineCounter, type Node, Parser } from "yaml";
import { ManifestError, type ManifestProblem } from "./errors.js";

/** The only apiVersion local mode (and the CRD) accepts. */
export const CAPACITY_POOL_API_VERSION = API_VERSION;
export { CAPACITY_POOL_KIND };

/** A parsed CapacityPool: the spec to configure and where it was written. */
export interface PoolManifest {
  readonly spec: internal.PoolSpec;
  readonly file: string;
  /** 1-based document index in the file. */
  readonly document: number;
  /** 1-based line where the document starts. */
  readonly line: number;
}

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
  const problems: ManifestProblem[] = [];
  const pools: PoolManifest[] = [];
  const seen = new Map<string, number>();
  // One document at a time (what parseAllDocuments does, without holding every
  // document's syntax tree at once: 100,000 pools in one file stay a few MB).
  const parser = new Parser(lineCounter.addNewLine);
  const composer = new Composer({ uniqueKeys: true });
  let index = 0;
  for (const doc of composer.compose(parser.parse(text))) {
    index++;
    for (const e of [...doc.errors, ...doc.warnings]) {
      // As the parser's prettyErrors option does (first line of the message).
      if (e.pos[0] === -1) continue;
      e.linePos = [lineCounter.linePos(e.pos[0]), lineCounter.linePos(e.pos[1])];
      e.message += ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}`;
    }
    const v = new DocumentValidator(file, index, doc, lineCounter, problems);
    const manifest = v.validate();
    if (manifest === undefined) continue;
    const first = seen.get(manifest.spec.pool);
    if (first !== undefined) {
      v.problem(
        "metadata.name",
        `pool ${manifest.spec.pool} is already defined by document ${first}`,
        ["metadata", "name"],
      );
      continue;
    }
    seen.set(manifest.spec.pool, index);
    pools.push(manifest);
  }
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

  lineOf(yamlPath: readonly (string | number)[], atKey: boolean): number | undefined {
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
    const found = validateCapacityPool(root);
    for (const p of sortByLine(found, (q) => this.lineOf(q.path, q.atKey))) {
      this.problem(p.field, p.message, p.path, p.atKey);
    }
    if (found.length > 0) return undefined;
    const pool = root as CapacityPool;
    const contentsStart = this.doc.contents?.range?.[0] ?? 0;
    return {
      spec: poolSpecOf(pool),
      file: this.file,
      document: this.index,
      line: this.lines.linePos(contentsStart).line,
    };
  }
}

/** Orders problems top to bottom in the file (stable for problems on one line). */
function sortByLine(
  problems: readonly ObjectProblem[],
  lineOf: (p: ObjectProblem) => number | undefined,
): ObjectProblem[] {
  return problems
    .map((p, i) => ({ p, i, line: lineOf(p) ?? 0 }))
    .sort((a, b) => a.line - b.line || a.i - b.i)
    .map((x) => x.p);
}
