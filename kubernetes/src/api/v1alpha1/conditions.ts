import type { Schema } from "./openapi.js";

/** A status condition, in the shape of Kubernetes' `metav1.Condition`. */
export interface Condition {
  readonly type: string;
  readonly status: "True" | "False" | "Unknown";
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
  /** RFC 3339; changes only when `status` changes. */
  readonly lastTransitionTime: string;
}

/** Condition types of a CapacityPool. */
export const PoolConditionType = {
  /** The pool is configured on its owner and serving. */
  Ready: "Ready",
  /** Reserved units exceed capacity (capacity was lowered below what was reserved). */
  OverCommitted: "OverCommitted",
} as const;

/** Condition types of a ShardMap. */
export const ShardMapConditionType = {
  /** Fewer live workers than the quorum: the map is frozen, nothing is reassigned. */
  QuorumLost: "QuorumLost",
  /** Shards are being handed off or recovered. */
  Progressing: "Progressing",
} as const;

/** Reasons (CamelCase, stable: alerts and scripts match on them) of every Berth condition. */
export const ConditionReason = {
  Configured: "Configured",
  OwnerUnknown: "OwnerUnknown",
  Unassigned: "Unassigned",
  SpecRejected: "SpecRejected",
  Closing: "Closing",
  CapacityExceeded: "CapacityExceeded",
  WithinCapacity: "WithinCapacity",
  QuorumMet: "QuorumMet",
  BelowQuorum: "BelowQuorum",
  Moving: "Moving",
  Settled: "Settled",
} as const;

/** The schema of `status.conditions`, as `metav1.Condition` defines it. */
export const conditionsSchema: Schema = {
  type: "array",
  description: "Latest observations of the object's state (Kubernetes condition shape).",
  maxItems: 16,
  "x-kubernetes-list-type": "map",
  "x-kubernetes-list-map-keys": ["type"],
  items: {
    type: "object",
    required: ["type", "status", "reason", "message", "lastTransitionTime"],
    properties: {
      type: {
        type: "string",
        description: "Type of the condition, CamelCase (Ready, OverCommitted, QuorumLost, …).",
        maxLength: 316,
        pattern:
          "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
      },
      status: { type: "string", enum: ["True", "False", "Unknown"] },
      observedGeneration: {
        type: "integer",
        format: "int64",
        minimum: 0,
        description: "metadata.generation the condition was set for.",
      },
      lastTransitionTime: {
        type: "string",
        format: "date-time",
        description: "When the status last changed.",
      },
      reason: {
        type: "string",
        minLength: 1,
        maxLength: 1024,
        pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description: "Programmatic identifier of the last transition, CamelCase.",
      },
      message: { type: "string", maxLength: 32768, description: "Human-readable detail." },
    },
  },
};

/**
 * `conditions` with `next` set in place of any condition of its type, as
 * apimachinery's `meta.SetStatusCondition` does: `lastTransitionTime` is kept when the
 * status did not change, so writing the same observation twice changes nothing.
 *
 * @param nowRfc3339 the transition time when the status changes (or is new)
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, "lastTransitionTime">,
  nowRfc3339: string,
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i < 0 ? undefined : list[i];
  const lastTransitionTime =
    prev !== undefined && prev.status === next.status ? prev.lastTransitionTime : nowRfc3339;
  const merged: Condition = { ...next, lastTransitionTime };
  if (i < 0) list.push(merged);
  else list[i] = merged;
  return list;
}

/** The condition of `type`, if present. */
export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
