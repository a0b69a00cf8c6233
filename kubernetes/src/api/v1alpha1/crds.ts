// The CustomResourceDefinitions of berth.dev/v1alpha1, built from the API types'
// schemas. charts/berth/crds/ holds their YAML (`npm run crds:gen`); a test fails
// when it is stale.
import {
  CAPACITY_POOL_KIND,
  CAPACITY_POOL_PLURAL,
  capacityPoolPrinterColumns,
  capacityPoolSpecSchema,
  capacityPoolStatusSchema,
} from "./capacity-pool.js";
import { GROUP, VERSION } from "./group-version.js";
import type { Schema } from "./openapi.js";
import {
  SHARD_MAP_KIND,
  SHARD_MAP_PLURAL,
  shardMapPrinterColumns,
  shardMapSpecSchema,
  shardMapStatusSchema,
} from "./shard-map.js";

interface CrdInput {
  readonly kind: string;
  readonly plural: string;
  readonly shortNames?: readonly string[];
  readonly description: string;
  readonly spec: Schema;
  readonly status: Schema;
  readonly printerColumns: readonly {
    readonly name: string;
    readonly type: string;
    readonly jsonPath: string;
  }[];
}

/** A CRD as a plain object (the YAML kubectl applies). */
export type CustomResourceDefinition = Record<string, unknown>;

function crd(input: CrdInput): CustomResourceDefinition {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${input.plural}.${GROUP}`,
      labels: { "app.kubernetes.io/part-of": "berth" },
    },
    spec: {
      group: GROUP,
      scope: "Namespaced",
      names: {
        kind: input.kind,
        listKind: `${input.kind}List`,
        plural: input.plural,
        singular: input.kind.toLowerCase(),
        ...(input.shortNames === undefined ? {} : { shortNames: input.shortNames }),
        categories: ["berth"],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: input.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: input.description,
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: input.spec,
                status: input.status,
              },
            },
          },
        },
      ],
    },
  };
}

/** The CapacityPool CRD (`kubectl get cp`, category `berth`). */
export function capacityPoolCrd(): CustomResourceDefinition {
  return crd({
    kind: CAPACITY_POOL_KIND,
    plural: CAPACITY_POOL_PLURAL,
    shortNames: ["cp"],
    description:
      "A countable resource with a fixed capacity (delivery slots, seats, stock) that Berth never oversells.",
    spec: capacityPoolSpecSchema,
    status: capacityPoolStatusSchema,
    printerColumns: capacityPoolPrinterColumns,
  });
}

/** The ShardMap CRD: one per install, written by the operator only. */
export function shardMapCrd(): CustomResourceDefinition {
  return crd({
    kind: SHARD_MAP_KIND,
    plural: SHARD_MAP_PLURAL,
    description:
      "The assignment of shards to workers, published by the Berth operator (static quorum, per-shard epochs).",
    spec: shardMapSpecSchema,
    status: shardMapStatusSchema,
    printerColumns: shardMapPrinterColumns,
  });
}

/** Every CRD of the group, with the file name it is kept under in charts/berth/crds/. */
export function allCrds(): readonly {
  readonly file: string;
  readonly crd: CustomResourceDefinition;
}[] {
  return [
    { file: `${CAPACITY_POOL_PLURAL}.${GROUP}.yaml`, crd: capacityPoolCrd() },
    { file: `${SHARD_MAP_PLURAL}.${GROUP}.yaml`, crd: shardMapCrd() },
  ];
}
