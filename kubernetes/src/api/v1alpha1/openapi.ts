// The subset of OpenAPI v3 that Kubernetes accepts in a structural CRD schema and
// that Berth's API types use. One schema per type is the single source of truth:
// the CRDs are generated from it and local mode validates manifests with it.

/**
 * A validation rule in CEL, checked by kube-apiserver (`x-kubernetes-validations`).
 * Local mode has no CEL interpreter: every rule used here must have a local
 * implementation in `local-rules.ts`, which a test enforces.
 */
export interface CelRule {
  readonly rule: string;
  /** What is wrong, as the user reads it (kube-apiserver prefixes the field path). */
  readonly message: string;
  /** The field the message is about, relative to the node the rule is on (`.end`). */
  readonly fieldPath?: string;
}

/** One node of a structural schema. */
export interface Schema {
  readonly type?: "object" | "string" | "integer" | "boolean" | "array";
  readonly description?: string;
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  /** Only for maps (string keys, values of this schema); never beside `properties`. */
  readonly additionalProperties?: Schema;
  readonly items?: Schema;
  readonly format?: "date-time" | "int32" | "int64";
  readonly enum?: readonly string[];
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
  readonly maxItems?: number;
  readonly "x-kubernetes-validations"?: readonly CelRule[];
  readonly "x-kubernetes-list-type"?: "atomic" | "map" | "set";
  readonly "x-kubernetes-list-map-keys"?: readonly string[];
}
