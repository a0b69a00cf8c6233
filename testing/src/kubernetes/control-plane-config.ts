/**
 * Pure builders for the test control plane: etcd and kube-apiserver flags, the apiserver
 * certificate's names, and kubeconfig files. No IO here; control-plane.ts runs things.
 */
import { stringify } from "yaml";

/** The Service range; its first address is the in-cluster `kubernetes` Service. */
export const SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24";
/** The first Service IP, which the serving certificate must name. */
export const KUBERNETES_SERVICE_IP = "10.0.0.1";
/** Issuer of ServiceAccount tokens (also their default audience). */
export const SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local";

/** Subject alternative names of the kube-apiserver serving certificate. */
export function apiServerSans(): string[] {
  return [
    "IP:127.0.0.1",
    `IP:${KUBERNETES_SERVICE_IP}`,
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
  ];
}

/** An openssl `-extfile` for a leaf certificate (the harness's certificates are made by it). */
export { leafExtensions } from "@berth/common/testing";

/**
 * An openssl `-subj` for a client certificate: Kubernetes reads CN as the user name and
 * each O as a group. Rejects characters that would change the subject's structure.
 */
export function clientSubject(user: string, groups: readonly string[] = []): string {
  for (const part of [user, ...groups]) {
    if (!/^[A-Za-z0-9:._@-]+$/.test(part)) {
      throw new RangeError(`user and group names must match [A-Za-z0-9:._@-]+, got "${part}"`);
    }
  }
  return `${groups.map((g) => `/O=${g}`).join("")}/CN=${user}`;
}

/** Ports and paths etcd runs with. */
export interface EtcdConfig {
  readonly dataDir: string;
  readonly clientPort: number;
  readonly peerPort: number;
}

/** etcd flags: one member on 127.0.0.1, no fsync (tests only), warnings only. */
export function etcdArgs(c: EtcdConfig): string[] {
  const client = `http://127.0.0.1:${c.clientPort}`;
  const peer = `http://127.0.0.1:${c.peerPort}`;
  return [
    "--name=berth-test",
    `--data-dir=${c.dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=berth-test=${peer}`,
    "--initial-cluster-state=new",
    "--unsafe-no-fsync=true",
    "--log-level=warn",
  ];
}

/** Paths of the certificates and keys the apiserver needs. */
export interface PkiPaths {
  readonly caCert: string;
  readonly caKey: string;
  readonly apiServerCert: string;
  readonly apiServerKey: string;
  readonly serviceAccountKey: string;
  readonly serviceAccountPub: string;
}

/** What kube-apiserver runs with. */
export interface ApiServerConfig {
  readonly etcdClientPort: number;
  readonly securePort: number;
  /** Scratch dir for certificates the apiserver generates itself. */
  readonly certDir: string;
  readonly pki: PkiPaths;
  /** Extra flags, appended (a later flag wins). */
  readonly extraArgs?: readonly string[];
}

/** kube-apiserver flags: loopback only, client certificates + ServiceAccount tokens, RBAC. */
export function apiServerArgs(c: ApiServerConfig): string[] {
  return [
    `--etcd-servers=http://127.0.0.1:${c.etcdClientPort}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${c.securePort}`,
    `--cert-dir=${c.certDir}`,
    `--tls-cert-file=${c.pki.apiServerCert}`,
    `--tls-private-key-file=${c.pki.apiServerKey}`,
    `--client-ca-file=${c.pki.caCert}`,
    `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
    "--authorization-mode=RBAC",
    "--anonymous-auth=false",
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-account-key-file=${c.pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${c.pki.serviceAccountKey}`,
    // Nothing else can serve the `kubernetes` Service's endpoints here; skip the reconciler.
    "--endpoint-reconciler-type=none",
    "--profiling=false",
    // On SIGTERM, end open watches (clients re-watch elsewhere) instead of waiting the
    // 60 s server shutdown timeout for them: with any watcher connected, a restart
    // would otherwise take a minute (or the harness's SIGKILL).
    "--shutdown-watch-termination-grace-period=2s",
    ...(c.extraArgs ?? []),
  ];
}

/** Credentials of a kubeconfig user. */
export type KubeconfigUser =
  | { readonly clientCertificatePem: string; readonly clientKeyPem: string }
  | { readonly token: string };

/** A kubeconfig with one cluster, one user, one context (all named after `name`). */
export function kubeconfigYaml(o: {
  readonly name: string;
  readonly server: string;
  readonly caPem: string;
  readonly user: KubeconfigUser;
  readonly namespace?: string;
}): string {
  const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
  const user =
    "token" in o.user
      ? { token: o.user.token }
      : {
          "client-certificate-data": b64(o.user.clientCertificatePem),
          "client-key-data": b64(o.user.clientKeyPem),
        };
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "berth-test",
        cluster: { server: o.server, "certificate-authority-data": b64(o.caPem) },
      },
    ],
    users: [{ name: o.name, user }],
    contexts: [
      {
        name: o.name,
        context: {
          cluster: "berth-test",
          user: o.name,
          ...(o.namespace ? { namespace: o.namespace } : {}),
        },
      },
    ],
    "current-context": o.name,
    preferences: {},
  });
}

/** The names of the /readyz checks that are not `ok` in a `/readyz?verbose` body. */
export function failingReadyzChecks(verboseBody: string): string[] {
  return verboseBody
    .split("\n")
    .map((l) => /^\[-\](\S+)/.exec(l.trim())?.[1])
    .filter((x): x is string => x !== undefined);
}
