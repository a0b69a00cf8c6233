import { type Condition, conditionsSchema } from "./conditions.js";
import type { Schema } from "./openapi.js";

/** Kind of the assignment resource (one per install, written by the operator only). */
export const SHARD_MAP_KIND = "ShardMap";
/** Plural resource name: `kubectl get shardmaps`. */
export const SHARD_MAP_PLURAL = "shardmaps";
/** Largest shard count an install may choose (the map is one object of bounded size). */
export const MAX_SHARD_COUNT = 4096;

/** Shard states as the resource spells them (the .proto's `ShardState`, CamelCase). */
export const SHARD_STATES = ["Active", "Draining", "Unassigned"] as const;
/** One of {@link SHARD_STATES}. */
export type ShardStateName = (typeof SHARD_STATES)[number];

/** What is fixed at install. */
export interface ShardMapSpec {
  readonly shardCount: number;
  /** Live workers needed to reassign; default: a majority of the worker replicas. */
  readonly quorum?: number;
}

/** A worker the operator knows of. */
export interface ShardMapMember {
  readonly id: string;
  readonly address: string;
  readonly live: boolean;
}

/** The owner of one shard. */
export interface ShardMapShard {
  readonly shard: number;
  readonly owner: string;
  readonly epoch: number;
  readonly state: ShardStateName;
}

/** The published assignment. */
export interface ShardMapStatus {
  readonly revision?: number;
  readonly observedGeneration?: number;
  readonly quorum?: number;
  readonly memberCount?: number;
  readonly liveMembers?: number;
  readonly movingShards?: number;
  readonly unassignedShards?: number;
  readonly members?: readonly ShardMapMember[];
  readonly shards?: readonly ShardMapShard[];
  readonly conditions?: readonly Condition[];
}

/** A ShardMap object. */
export interface ShardMapObject {
  readonly apiVersion: string;
  readonly kind: typeof SHARD_MAP_KIND;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly generation?: number;
    readonly resourceVersion?: string;
  };
  readonly spec: ShardMapSpec;
  readonly status?: ShardMapStatus;
}

const count = (description: string): Schema => ({
  type: "integer",
  format: "int32",
  minimum: 0,
  description,
});

/** Schema of `spec`: the shard count can never change once set. */
export const shardMapSpecSchema: Schema = {
  type: "object",
  required: ["shardCount"],
  properties: {
    shardCount: {
      type: "integer",
      format: "int32",
      minimum: 1,
      maximum: MAX_SHARD_COUNT,
      description: "Number of shards; fixed for the life of the data (pool → shard never moves).",
    },
    quorum: {
      type: "integer",
      format: "int32",
      minimum: 1,
      description: "Live workers needed to reassign shards; default: a majority of the replicas.",
    },
  },
  "x-kubernetes-validations": [
    {
      rule: "self.shardCount == oldSelf.shardCount",
      message: "shardCount is fixed at install and cannot change",
      fieldPath: ".shardCount",
    },
  ],
};

/** Schema of `status`, written through `/status` by the operator's leader. */
export const shardMapStatusSchema: Schema = {
  type: "object",
  properties: {
    revision: { type: "integer", format: "int64", minimum: 0, description: "Map revision." },
    observedGeneration: { type: "integer", format: "int64", minimum: 0 },
    quorum: count("Quorum in force."),
    memberCount: count("Workers known (live or not)."),
    liveMembers: count("Workers whose Lease is being renewed."),
    movingShards: count("Shards draining or recovering."),
    unassignedShards: count("Shards with no owner."),
    members: {
      type: "array",
      maxItems: MAX_SHARD_COUNT,
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["id"],
      items: {
        type: "object",
        required: ["id", "address", "live"],
        properties: {
          id: { type: "string", maxLength: 253, description: "Worker id (its pod name)." },
          address: { type: "string", maxLength: 261, description: "host:port of its gRPC." },
          live: { type: "boolean" },
        },
      },
    },
    shards: {
      type: "array",
      maxItems: MAX_SHARD_COUNT,
      "x-kubernetes-list-type": "atomic",
      items: {
        type: "object",
        required: ["shard", "owner", "epoch", "state"],
        properties: {
          shard: { type: "integer", format: "int32", minimum: 0 },
          owner: { type: "string", maxLength: 253 },
          epoch: { type: "integer", format: "int64", minimum: 0 },
          state: { type: "string", enum: SHARD_STATES },
        },
      },
    },
    conditions: conditionsSchema,
  },
};

/** Columns of `kubectl get shardmaps`. */
export const shardMapPrinterColumns = [
  { name: "Shards", type: "integer", jsonPath: ".spec.shardCount" },
  { name: "Members", type: "integer", jsonPath: ".status.memberCount" },
  { name: "Live", type: "integer", jsonPath: ".status.liveMembers" },
  { name: "Quorum", type: "integer", jsonPath: ".status.quorum" },
  { name: "Moving", type: "integer", jsonPath: ".status.movingShards" },
  {
    name: "QuorumLost",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="QuorumLost")].status',
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
] as const;
