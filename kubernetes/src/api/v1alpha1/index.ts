// berth.dev/v1alpha1: the resources users and the operator exchange through kube-apiserver.

export {
  CAPACITY_POOL_FINALIZER,
  CAPACITY_POOL_KIND,
  CAPACITY_POOL_PLURAL,
  type CapacityPool,
  type CapacityPoolSpec,
  type CapacityPoolStatus,
  capacityPoolPrinterColumns,
  capacityPoolSpecSchema,
  capacityPoolStatusSchema,
  type TimeWindow,
} from "./capacity-pool.js";
export { CAPACITY_POOL_CASES, type CapacityPoolCase } from "./capacity-pool-cases.js";
export {
  type Condition,
  ConditionReason,
  conditionsSchema,
  findCondition,
  PoolConditionType,
  ShardMapConditionType,
  setCondition,
} from "./conditions.js";
export {
  allCrds,
  type CustomResourceDefinition,
  capacityPoolCrd,
  shardMapCrd,
} from "./crds.js";
export { API_VERSION, GROUP, VERSION } from "./group-version.js";
export { LOCAL_RULES, type LocalRule } from "./local-rules.js";
export type { CelRule, Schema } from "./openapi.js";
export { poolIdOf, poolSpecOf } from "./pool-spec.js";
export {
  MAX_SHARD_COUNT,
  SHARD_MAP_KIND,
  SHARD_MAP_PLURAL,
  SHARD_STATES,
  type ShardMapMember,
  type ShardMapObject,
  type ShardMapShard,
  type ShardMapSpec,
  type ShardMapStatus,
  type ShardStateName,
  shardMapPrinterColumns,
  shardMapSpecSchema,
  shardMapStatusSchema,
} from "./shard-map.js";
export {
  describe,
  type FieldPath,
  fieldName,
  type ObjectProblem,
  ruleProblems,
  validateCapacityPool,
} from "./validation.js";
