/**
 * @berth/kubernetes: what operator, worker and gateway share about Kubernetes — the
 * berth.dev/v1alpha1 API (types, schemas, CRDs, validation) and the adapters that
 * talk to an API server (leader election, Lease owners, list+watch caches, worker Leases, the
 * ShardMap resource as a ShardMapSource) and the RBAC each component needs.
 */

export * from "./api/v1alpha1/index.js";
export {
  type InformerEvent,
  type KubeObject,
  LAST_APPLIED_ANNOTATION,
  type ObjectMeta,
  objectKey,
  ResourceInformer,
  type ResourceInformerOptions,
  type ResourceInformerStats,
  stripLastAppliedConfiguration,
  stripManagedFields,
} from "./informer.js";
export { loadKubeConfig, PooledKubeConfig } from "./kube-config.js";
export { LeaderElector, type LeaderElectorOptions } from "./leader-election.js";
export {
  controllerOwnerOf,
  type LeaseOwner,
  PodControllerOwner,
  type PodControllerOwnerOptions,
  withOwner,
} from "./lease-owner.js";
export {
  type BerthRbacOptions,
  DEFAULT_LEADER_LEASE,
  DEFAULT_SERVICE_ACCOUNTS,
  gatewayRole,
  operatorClusterRole,
  operatorRole,
  POD_NAME_EXTRA,
  rbacObjects,
  roleBindings,
  workerLeaseAdmissionPolicy,
  workerLeaseAdmissionPolicyBinding,
  workerLeasePolicyName,
  workerRole,
} from "./rbac.js";
export {
  type ShardMapObservation,
  ShardMapResourceSource,
  type ShardMapResourceSourceOptions,
  type ShardMapResourceSourceStats,
  shardMapOfResource,
  shardMapStatusOf,
} from "./shard-map-resource.js";
export {
  WORKER_ADDRESS_ANNOTATION,
  WORKER_LEASE_LABELS,
  WORKER_LEASE_SELECTOR,
  WorkerLease,
  type WorkerLeaseOptions,
  type WorkerLeaseStats,
} from "./worker-lease.js";
