/**
 * @berth/operator: assigns shards of pools to workers — membership from worker
 * Leases, static quorum, drain/ack hand-off — and keeps CapacityPool status. The
 * API it serves (CapacityPool, ShardMap) lives in @berth/kubernetes. Its pure
 * planning (quorum, the ShardMap at start, hand-off steps, the CapacityPool →
 * Configure diff) is also local mode's (@berth/local).
 */

export {
  HandOffTimer,
  MemberTransitions,
  type OperatorMetrics,
  operatorMetrics,
} from "./adapters/operator-metrics.js";
export {
  LeaseMembership,
  type LeaseObservation,
  type ObservedMember,
} from "./controller/membership.js";
export { PoolCounters, type PoolCountersOptions } from "./controller/pool-counters.js";
export {
  processQueue,
  type ReconcileResult,
  WorkQueue,
  type WorkQueueOptions,
} from "./controller/work-queue.js";
export { WorkerReports, type WorkerReportsOptions } from "./controller/worker-reports.js";
export {
  type AcceptedSpec,
  type ConfigureDiffInput,
  configuresNeeded,
  type PendingConfigure,
  type Placement,
  specKey,
} from "./planning/configure-diff.js";
export {
  type HandOffInput,
  type HandOffStep,
  planHandOff,
  type ShardChange,
  type ShardReport,
} from "./planning/hand-off.js";
export { effectiveQuorum, majority } from "./planning/quorum.js";
export {
  planShardMapAtStart,
  ShardCountMismatchError,
  type StartShardMapInput,
} from "./planning/start-shard-map.js";
