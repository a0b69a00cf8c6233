/**
 * @berth/operator: assigns shards of pools to workers — membership from worker
 * Leases, static quorum, drain/ack hand-off — and keeps CapacityPool status. The
 * API it serves (CapacityPool, ShardMap) lives in @berth/kubernetes.
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
  type HandOffInput,
  type HandOffStep,
  planHandOff,
  type ShardChange,
  type ShardReport,
} from "./planning/hand-off.js";
