import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "yaml";
import {
  apiServerArgs,
  apiServerSans,
  clientSubject,
  etcdArgs,
  failingReadyzChecks,
  kubeconfigYaml,
  leafExtensions,
} from "./control-plane-config.js";

const pki = {
  caCert: "/p/ca.crt",
  caKey: "/p/ca.key",
  apiServerCert: "/p/apiserver.crt",
  apiServerKey: "/p/apiserver.key",
  serviceAccountKey: "/p/sa.key",
  serviceAccountPub: "/p/sa.pub",
};

test("the serving certificate names loopback, the first service IP and every in-cluster name", () => {
  const ext = leafExtensions("server", apiServerSans());
  assert.match(ext, /extendedKeyUsage=serverAuth/);
  for (const name of [
    "IP:127.0.0.1",
    "IP:10.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
  ]) {
    assert.ok(ext.includes(name), name);
  }
  assert.doesNotMatch(leafExtensions("client"), /subjectAltName/);
});

test("client subjects put groups in O and the user in CN, and refuse injected separators", () => {
  assert.equal(clientSubject("admin", ["system:masters"]), "/O=system:masters/CN=admin");
  assert.equal(clientSubject("system:kube-scheduler"), "/CN=system:kube-scheduler");
  assert.throws(() => clientSubject("evil/O=system:masters"), RangeError);
  assert.throws(() => clientSubject("ok", ["a,b"]), RangeError);
});

test("etcd listens on loopback only, as a one-member cluster, without fsync", () => {
  const args = etcdArgs({ dataDir: "/d", clientPort: 1111, peerPort: 2222 });
  assert.ok(args.includes("--listen-client-urls=http://127.0.0.1:1111"));
  assert.ok(args.includes("--listen-peer-urls=http://127.0.0.1:2222"));
  assert.ok(args.includes("--initial-cluster=berth-test=http://127.0.0.1:2222"));
  assert.ok(args.includes("--unsafe-no-fsync=true"));
  assert.ok(args.every((a) => !a.includes("0.0.0.0")));
});

test("kube-apiserver binds loopback, authorises with RBAC, refuses anonymous, signs SA tokens, ends watches on SIGTERM", () => {
  const args = apiServerArgs({ etcdClientPort: 1, securePort: 2, certDir: "/c", pki });
  assert.ok(args.includes("--bind-address=127.0.0.1"));
  assert.ok(args.includes("--secure-port=2"));
  assert.ok(args.includes("--etcd-servers=http://127.0.0.1:1"));
  assert.ok(args.includes("--authorization-mode=RBAC"));
  assert.ok(args.includes("--anonymous-auth=false"));
  assert.ok(args.includes("--client-ca-file=/p/ca.crt"));
  assert.ok(args.includes("--service-account-signing-key-file=/p/sa.key"));
  assert.ok(args.includes("--shutdown-watch-termination-grace-period=2s"));
  const extra = apiServerArgs({
    etcdClientPort: 1,
    securePort: 2,
    certDir: "/c",
    pki,
    extraArgs: ["--v=4"],
  });
  assert.equal(extra.at(-1), "--v=4");
});

interface Kubeconfig {
  "current-context": string;
  clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
  users: { user: Record<string, string> }[];
  contexts: { context: { namespace?: string } }[];
}

test("a kubeconfig embeds the CA and the credentials and selects its one context", () => {
  const cert = parse(
    kubeconfigYaml({
      name: "admin",
      server: "https://127.0.0.1:6443",
      caPem: "CA",
      user: { clientCertificatePem: "CERT", clientKeyPem: "KEY" },
    }),
  ) as Kubeconfig;
  assert.equal(cert["current-context"], "admin");
  assert.equal(cert.clusters[0]?.cluster.server, "https://127.0.0.1:6443");
  assert.equal(
    Buffer.from(cert.clusters[0]?.cluster["certificate-authority-data"] ?? "", "base64").toString(),
    "CA",
  );
  assert.equal(
    Buffer.from(cert.users[0]?.user["client-key-data"] ?? "", "base64").toString(),
    "KEY",
  );
  const token = parse(
    kubeconfigYaml({
      name: "sa",
      server: "https://127.0.0.1:1",
      caPem: "CA",
      user: { token: "T" },
      namespace: "ns",
    }),
  ) as Kubeconfig;
  assert.deepEqual(token.users[0]?.user, { token: "T" });
  assert.equal(token.contexts[0]?.context.namespace, "ns");
});

test("failing /readyz checks are read from the verbose body", () => {
  const body = [
    "[+]ping ok",
    "[+]etcd ok",
    "[-]poststarthook/rbac/bootstrap-roles failed: not finished",
    "[-]informer-sync failed",
    "readyz check failed",
  ].join("\n");
  assert.deepEqual(failingReadyzChecks(body), [
    "poststarthook/rbac/bootstrap-roles",
    "informer-sync",
  ]);
});
