// Least privilege for each Berth component, as data: the Roles, ClusterRole and
// bindings an install needs, and the admission policy RBAC cannot express. The Helm
// chart is generated from (or tested against) these; e2e/src/operator/rbac.k8s.int.test.ts
// shows on a real kube-apiserver that each component can do its job and no more.
//
// What RBAC cannot do: restrict `create` by object name, and tell apart pods that
// share a ServiceAccount (every pod of the worker StatefulSet does). So a worker's
// right to write Leases is narrowed by a ValidatingAdmissionPolicy to the one Lease
// named after its pod, whose name the API server puts in the user's extra info
// (`authentication.kubernetes.io/pod-name`) for a pod-bound token — the projected
// token the kubelet mounts.
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1PolicyRule,
  V1Role,
  V1RoleBinding,
  V1ValidatingAdmissionPolicy,
  V1ValidatingAdmissionPolicyBinding,
} from "@kubernetes/client-node";
import { CAPACITY_POOL_PLURAL } from "./api/v1alpha1/capacity-pool.js";
import { GROUP } from "./api/v1alpha1/group-version.js";
import { SHARD_MAP_PLURAL } from "./api/v1alpha1/shard-map.js";

/** ServiceAccount names of an install, unless overridden. */
export const DEFAULT_SERVICE_ACCOUNTS = {
  operator: "berth-operator",
  worker: "berth-worker",
  gateway: "berth-gateway",
} as const;

/** Name of the operator's leader-election Lease, unless overridden. */
export const DEFAULT_LEADER_LEASE = "berth-operator";

/** The user extra key holding the pod a ServiceAccount token is bound to. */
export const POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name";

/** What the RBAC objects of one install are built for. */
export interface BerthRbacOptions {
  /** The install namespace: ShardMap, Leases, the components' ServiceAccounts. */
  readonly namespace: string;
  readonly serviceAccounts?: {
    readonly operator?: string;
    readonly worker?: string;
    readonly gateway?: string;
  };
  /** The operator's leader-election Lease (default {@link DEFAULT_LEADER_LEASE}). */
  readonly leaderLease?: string;
}

const COORDINATION = "coordination.k8s.io";
const READ = ["get", "list", "watch"];

/**
 * Reading one's own Pod, to give one's Lease the pod's controller as owner (see
 * lease-owner.ts). RBAC can narrow `get` by name only to names known when the Role is
 * written: a Deployment's pods get random names, and a StatefulSet's ordinal names
 * depend on its replica count, so the rule covers every pod of the namespace (`get`
 * only: no list, no watch).
 */
const GET_PODS: V1PolicyRule = { apiGroups: [""], resources: ["pods"], verbs: ["get"] };

function accounts(o: BerthRbacOptions) {
  return { ...DEFAULT_SERVICE_ACCOUNTS, ...o.serviceAccounts };
}

const labels = (component: string) => ({
  "app.kubernetes.io/part-of": "berth",
  "app.kubernetes.io/component": component,
});

/** Cluster-scoped objects of an install carry its namespace in their name. */
const clusterName = (o: BerthRbacOptions, what: string) => `berth:${o.namespace}:${what}`;

/**
 * The operator's rights in the install namespace: read and create the ShardMap and
 * write its status (never its spec: the shard count is fixed); read the worker Leases;
 * create and renew its own leader Lease (RBAC cannot limit `create` to one name, only
 * `update`); get its own Pod, whose controller owns the leader Lease.
 */
export function operatorRole(o: BerthRbacOptions): V1Role {
  const rules: V1PolicyRule[] = [
    { apiGroups: [GROUP], resources: [SHARD_MAP_PLURAL], verbs: [...READ, "create"] },
    { apiGroups: [GROUP], resources: [`${SHARD_MAP_PLURAL}/status`], verbs: ["update", "patch"] },
    { apiGroups: [COORDINATION], resources: ["leases"], verbs: READ },
    { apiGroups: [COORDINATION], resources: ["leases"], verbs: ["create"] },
    {
      apiGroups: [COORDINATION],
      resources: ["leases"],
      resourceNames: [o.leaderLease ?? DEFAULT_LEADER_LEASE],
      verbs: ["update"],
    },
    GET_PODS,
  ];
  return role(o, accounts(o).operator, "operator", rules);
}

/**
 * The operator's rights in every namespace, where users keep their CapacityPools:
 * read and update them (finalizers included) and their status, and record Events
 * about them (both Event APIs: core/v1 and events.k8s.io/v1 store the same objects).
 */
export function operatorClusterRole(o: BerthRbacOptions): V1ClusterRole {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: clusterName(o, "operator"), labels: labels("operator") },
    rules: [
      {
        apiGroups: [GROUP],
        resources: [CAPACITY_POOL_PLURAL],
        verbs: [...READ, "update", "patch"],
      },
      {
        apiGroups: [GROUP],
        resources: [`${CAPACITY_POOL_PLURAL}/status`],
        verbs: ["get", "update", "patch"],
      },
      { apiGroups: [GROUP], resources: [`${CAPACITY_POOL_PLURAL}/finalizers`], verbs: ["update"] },
      { apiGroups: ["", "events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] },
    ],
  };
}

/**
 * A worker's rights: its own Lease (create, renew, delete on release — narrowed to
 * that one Lease by {@link workerLeaseAdmissionPolicy}), reading the ShardMap, and
 * getting its own Pod, whose controller (the StatefulSet) owns the Lease.
 */
export function workerRole(o: BerthRbacOptions): V1Role {
  return role(o, accounts(o).worker, "worker", [
    {
      apiGroups: [COORDINATION],
      resources: ["leases"],
      verbs: ["create", "get", "update", "delete"],
    },
    { apiGroups: [GROUP], resources: [SHARD_MAP_PLURAL], verbs: READ },
    GET_PODS,
  ]);
}

/** The gateway's rights: reading the ShardMap. */
export function gatewayRole(o: BerthRbacOptions): V1Role {
  return role(o, accounts(o).gateway, "gateway", [
    { apiGroups: [GROUP], resources: [SHARD_MAP_PLURAL], verbs: READ },
  ]);
}

function role(o: BerthRbacOptions, name: string, component: string, rules: V1PolicyRule[]): V1Role {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name, namespace: o.namespace, labels: labels(component) },
    rules,
  };
}

/**
 * Binds each Role (named after its ServiceAccount) to that ServiceAccount, and the
 * operator's ClusterRole to the operator's.
 */
export function roleBindings(o: BerthRbacOptions): (V1RoleBinding | V1ClusterRoleBinding)[] {
  const sa = accounts(o);
  const subject = (name: string) => ({ kind: "ServiceAccount", name, namespace: o.namespace });
  const bindings: (V1RoleBinding | V1ClusterRoleBinding)[] = (
    [
      ["operator", sa.operator],
      ["worker", sa.worker],
      ["gateway", sa.gateway],
    ] as const
  ).map(([component, name]) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name, namespace: o.namespace, labels: labels(component) },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
    subjects: [subject(name)],
  }));
  bindings.push({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: clusterName(o, "operator"), labels: labels("operator") },
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: clusterName(o, "operator"),
    },
    subjects: [subject(sa.operator)],
  });
  return bindings;
}

/** Name of the worker Lease policy and of its binding (cluster-scoped: one per install). */
export function workerLeasePolicyName(o: BerthRbacOptions): string {
  return `berth-worker-leases.${o.namespace}`;
}

/**
 * Refuses every Lease create, update or delete by the worker ServiceAccount unless
 * the Lease is named after the pod the request's token is bound to (`oldObject` on
 * delete). A token bound to no pod (a legacy Secret token, a plain TokenRequest) can
 * write no Lease at all.
 */
export function workerLeaseAdmissionPolicy(o: BerthRbacOptions): V1ValidatingAdmissionPolicy {
  const username = `system:serviceaccount:${o.namespace}:${accounts(o).worker}`;
  const pod = `request.userInfo.extra[${cel(POD_NAME_EXTRA)}]`;
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingAdmissionPolicy",
    metadata: { name: workerLeasePolicyName(o), labels: labels("worker") },
    spec: {
      failurePolicy: "Fail",
      matchConstraints: {
        resourceRules: [
          {
            apiGroups: [COORDINATION],
            apiVersions: ["*"],
            operations: ["CREATE", "UPDATE", "DELETE"],
            resources: ["leases"],
          },
        ],
      },
      matchConditions: [
        { name: "berth-worker", expression: `request.userInfo.username == ${cel(username)}` },
      ],
      validations: [
        {
          expression:
            `${cel(POD_NAME_EXTRA)} in request.userInfo.extra && size(${pod}) == 1 && ` +
            `(request.operation == "DELETE" ? oldObject : object).metadata.name == ${pod}[0]`,
          message:
            "a Berth worker may write only the Lease named after its own pod, with a token bound to that pod",
          reason: "Forbidden",
        },
      ],
    },
  };
}

/** Applies {@link workerLeaseAdmissionPolicy} to the install namespace, denying. */
export function workerLeaseAdmissionPolicyBinding(
  o: BerthRbacOptions,
): V1ValidatingAdmissionPolicyBinding {
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingAdmissionPolicyBinding",
    metadata: { name: workerLeasePolicyName(o), labels: labels("worker") },
    spec: {
      policyName: workerLeasePolicyName(o),
      validationActions: ["Deny"],
      matchResources: {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": o.namespace } },
      },
    },
  };
}

/** Every object above, in the order to apply them. */
export function rbacObjects(
  o: BerthRbacOptions,
): (
  | V1Role
  | V1ClusterRole
  | V1RoleBinding
  | V1ClusterRoleBinding
  | V1ValidatingAdmissionPolicy
  | V1ValidatingAdmissionPolicyBinding
)[] {
  return [
    operatorRole(o),
    operatorClusterRole(o),
    workerRole(o),
    gatewayRole(o),
    ...roleBindings(o),
    workerLeaseAdmissionPolicy(o),
    workerLeaseAdmissionPolicyBinding(o),
  ];
}

/** A CEL string literal. */
function cel(s: string): string {
  return JSON.stringify(s);
}
