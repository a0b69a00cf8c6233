/**
 * @berth/operator: the berth.dev/v1alpha1 API (types, schemas, CRDs, validation).
 * The controller (membership, quorum, hand-off, status) grows here next.
 */

export { LeaderElector, type LeaderElectorOptions } from "./adapters/leader-election.js";
export * from "./api/v1alpha1/index.js";
export {
  LeaseMembership,
  type LeaseObservation,
  type ObservedMember,
} from "./controller/membership.js";
export {
  processQueue,
  type ReconcileResult,
  WorkQueue,
  type WorkQueueOptions,
} from "./controller/work-queue.js";
export {
  type HandOffInput,
  type HandOffStep,
  planHandOff,
  type ShardChange,
  type ShardReport,
} from "./planning/hand-off.js";
