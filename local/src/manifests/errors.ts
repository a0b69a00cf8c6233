/** One thing wrong with a manifest, located precisely enough to fix it. */
export interface ManifestProblem {
  /** The file as the user named it (e.g. `examples/pools.yaml`). */
  readonly file: string;
  /** 1-based index of the YAML document in the file; 0 for problems about the whole file. */
  readonly document: number;
  /** Dotted field path (`spec.capacity`, `metadata.labels["zone"]`); empty for the document itself. */
  readonly path: string;
  readonly message: string;
  /** 1-based line of the offending node, when known. */
  readonly line?: number;
}

/** Formats a problem as `file: document N: field.path: message (line L)`. */
export function formatProblem(p: ManifestProblem): string {
  const parts = [p.file];
  if (p.document > 0) parts.push(`document ${p.document}`);
  if (p.path !== "") parts.push(p.path);
  parts.push(p.line === undefined ? p.message : `${p.message} (line ${p.line})`);
  return parts.join(": ");
}

/**
 * Thrown when CapacityPool manifests are invalid: malformed YAML, a wrong
 * apiVersion or kind, an unknown field, or a value out of bounds. Carries every
 * problem found, not only the first.
 */
export class ManifestError extends Error {
  override readonly name = "ManifestError";
  readonly problems: readonly ManifestProblem[];

  constructor(problems: readonly ManifestProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.problems = problems;
  }
}
