/**
 * @berth/kubernetes: what operator, worker and gateway share about Kubernetes — the
 * berth.dev/v1alpha1 API (types, schemas, CRDs, validation) and the adapters that
 * talk to an API server (leader election; Leases and watches come next).
 */

export * from "./api/v1alpha1/index.js";
export { LeaderElector, type LeaderElectorOptions } from "./leader-election.js";
