import { MAX_CAPACITY } from "@berth/proto";
import { type Condition, conditionsSchema } from "./conditions.js";
import type { Schema } from "./openapi.js";

/** Kind of a capacity pool resource. */
export const CAPACITY_POOL_KIND = "CapacityPool";
/** Plural resource name: `kubectl get capacitypools`. */
export const CAPACITY_POOL_PLURAL = "capacitypools";
/** Finalizer the operator puts on every CapacityPool: the pool is closed before the object goes. */
export const CAPACITY_POOL_FINALIZER = "berth.dev/close-pool";

/** The half-open interval `[start, end)` a pool's capacity is for, in RFC 3339. */
export interface TimeWindow {
  readonly start: string;
  readonly end: string;
}

/** What a user declares about a pool. Labels (in metadata) are the selector surface. */
export interface CapacityPoolSpec {
  readonly capacity: number;
  readonly window?: TimeWindow;
  readonly closed?: boolean;
}

/** What the operator observes about a pool; written by the operator alone. */
export interface CapacityPoolStatus {
  readonly shard?: number;
  readonly owner?: string;
  readonly epoch?: number;
  readonly reserved?: number;
  readonly available?: number;
  readonly observedGeneration?: number;
  readonly conditions?: readonly Condition[];
}

/** A CapacityPool object as stored by kube-apiserver (metadata reduced to what Berth reads). */
export interface CapacityPool {
  readonly apiVersion: string;
  readonly kind: typeof CAPACITY_POOL_KIND;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly generation?: number;
    readonly resourceVersion?: string;
    readonly uid?: string;
    readonly finalizers?: readonly string[];
    /** Set when a delete was asked for; the object stays until its finalizers are removed. */
    readonly deletionTimestamp?: string;
  };
  readonly spec: CapacityPoolSpec;
  readonly status?: CapacityPoolStatus;
}

/** Schema of `spec`: bounds are the .proto's (`PoolSpec`). */
export const capacityPoolSpecSchema: Schema = {
  type: "object",
  description: "What the pool offers. Labels on the object are what GetAvailability selects by.",
  required: ["capacity"],
  properties: {
    capacity: {
      type: "integer",
      format: "int32",
      minimum: 0,
      maximum: MAX_CAPACITY,
      description:
        "Units the pool can hold. Lowering it below what is reserved leaves the pool over-committed (reported, never revoked).",
    },
    window: {
      type: "object",
      description: "The half-open interval [start, end) the capacity is for. Optional.",
      required: ["start", "end"],
      properties: {
        start: { type: "string", format: "date-time", description: "RFC 3339 start (inclusive)." },
        end: { type: "string", format: "date-time", description: "RFC 3339 end (exclusive)." },
      },
      "x-kubernetes-validations": [
        {
          rule: "self.start < self.end",
          message: "must be after spec.window.start",
          fieldPath: ".end",
        },
      ],
    },
    closed: {
      type: "boolean",
      description: "A closed pool takes no reserves; releases still work.",
    },
  },
};

/** Schema of `status`, written through the `/status` subresource by the operator. */
export const capacityPoolStatusSchema: Schema = {
  type: "object",
  description: "Observed state, written by the Berth operator.",
  properties: {
    shard: { type: "integer", format: "int32", minimum: 0, description: "Shard of the pool id." },
    owner: { type: "string", maxLength: 253, description: "Worker that owns the shard." },
    epoch: {
      type: "integer",
      format: "int64",
      minimum: 0,
      description: "Epoch of the shard's ownership.",
    },
    reserved: {
      type: "integer",
      format: "int64",
      minimum: 0,
      description: "Units reserved (from gossip; may lag the owner by moments).",
    },
    available: {
      type: "integer",
      format: "int64",
      minimum: 0,
      description: "capacity - reserved, never below 0; 0 when closed.",
    },
    observedGeneration: {
      type: "integer",
      format: "int64",
      minimum: 0,
      description: "metadata.generation the owner has applied.",
    },
    conditions: conditionsSchema,
  },
};

/** Columns of `kubectl get capacitypools`. */
export const capacityPoolPrinterColumns = [
  { name: "Capacity", type: "integer", jsonPath: ".spec.capacity" },
  { name: "Reserved", type: "integer", jsonPath: ".status.reserved" },
  { name: "Available", type: "integer", jsonPath: ".status.available" },
  { name: "Owner", type: "string", jsonPath: ".status.owner" },
  { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
] as const;
