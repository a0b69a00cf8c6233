// charts/berth rendered by the project-built helm: lint --strict, what every values file
// renders (selectors, probes, security, arguments), the strict values schema's messages,
// and the RBAC objects equal to what kubernetes/src/rbac.ts builds.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { rbacObjects } from "@berth/kubernetes";
import { goMissingReason } from "@berth/testing/kubernetes";
import { parse } from "yaml";
import {
  CHART_DIR,
  find,
  helmBinary,
  helmTemplate,
  type K8sObject,
  render,
  run,
  VALUES_DIR,
  VALUES_FILES,
} from "./chart.js";

const skip = goMissingReason();
if (skip) console.log(`# SKIP chart tests: ${skip}`);

const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet"]);
const SELECTOR_KEYS = [
  "app.kubernetes.io/component",
  "app.kubernetes.io/instance",
  "app.kubernetes.io/name",
];

const workloads = (objects: readonly K8sObject[]) =>
  objects.filter((o) => WORKLOAD_KINDS.has(o.kind));
const container = (w: K8sObject) => w.spec.template.spec.containers[0];
const args = (w: K8sObject): string[] => container(w).args;
/** The value following `flag` in a container's args (undefined when absent). */
const flag = (w: K8sObject, name: string): string | undefined => {
  const a = args(w);
  const i = a.indexOf(name);
  return i < 0 ? undefined : a[i + 1];
};

/** Every label selector a rendered object carries (workloads, Services, PDBs, policies). */
function selectors(objects: readonly K8sObject[]): [string, Record<string, string>][] {
  const out: [string, Record<string, string>][] = [];
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata.name}`;
    if (o.spec?.selector?.matchLabels) {
      // A selector over several components (the ServiceMonitor) names the component
      // key in an expression: count it as selected on.
      const labels: Record<string, string> = { ...o.spec.selector.matchLabels };
      for (const e of o.spec.selector.matchExpressions ?? [])
        labels[e.key] = `${e.operator} ${e.values}`;
      out.push([id, labels]);
    } else if (o.kind === "Service" && o.spec?.selector) out.push([id, o.spec.selector]);
    if (o.kind === "NetworkPolicy") out.push([id, o.spec.podSelector.matchLabels]);
  }
  return out;
}

describe("charts/berth rendered by helm", { skip }, () => {
  let helm: string;
  const rendered = new Map<string, K8sObject[]>();

  before(async () => {
    helm = await helmBinary();
    for (const f of VALUES_FILES) rendered.set(f, await render(helm, { values: [f] }));
  });
  const objectsOf = (f: string): K8sObject[] => {
    const o = rendered.get(f);
    assert.ok(o, `${f} not rendered`);
    return o;
  };

  for (const f of VALUES_FILES) {
    test(`helm lint --strict passes with ${f}`, async () => {
      const r = await run(helm, ["lint", "--strict", CHART_DIR, "--values", join(VALUES_DIR, f)]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });

    test(`${f}: selectors are name/instance/component only, and match their pods`, () => {
      const objects = objectsOf(f);
      const sel = selectors(objects);
      assert.ok(sel.length >= 6, `selectors found: ${sel.map(([id]) => id).join(", ")}`);
      for (const [id, labels] of sel) {
        assert.deepEqual(Object.keys(labels).sort(), SELECTOR_KEYS, id);
        assert.ok(!JSON.stringify(labels).includes("0.1.0"), `${id} selects on a version`);
      }
      for (const w of workloads(objects)) {
        const podLabels = w.spec.template.metadata.labels;
        for (const [k, v] of Object.entries(w.spec.selector.matchLabels)) {
          assert.equal(podLabels[k], v, `${w.metadata.name}: pod label ${k}`);
        }
      }
    });

    test(`${f}: every component probes /readyz and /healthz on http-metrics`, () => {
      const ws = workloads(objectsOf(f));
      assert.deepEqual(ws.map((w) => w.metadata.name).sort(), [
        "berth-gateway",
        "berth-operator",
        "berth-worker",
      ]);
      for (const w of ws) {
        const c = container(w);
        assert.deepEqual(
          c.readinessProbe.httpGet,
          { path: "/readyz", port: "http-metrics" },
          w.metadata.name,
        );
        assert.deepEqual(c.livenessProbe.httpGet, { path: "/healthz", port: "http-metrics" });
        assert.ok(
          c.ports.some((p: { name: string }) => p.name === "http-metrics"),
          `${w.metadata.name} names its metrics port http-metrics`,
        );
      }
    });

    test(`${f}: non-root, read-only root, no capabilities, RuntimeDefault seccomp`, () => {
      const pods = objectsOf(f)
        .filter((o) => WORKLOAD_KINDS.has(o.kind) || o.kind === "Pod")
        .map((o) => [o.metadata.name, o.kind === "Pod" ? o.spec : o.spec.template.spec] as const);
      assert.ok(pods.length >= 3);
      for (const [name, spec] of pods) {
        assert.equal(spec.securityContext.runAsNonRoot, true, name);
        assert.ok(spec.securityContext.runAsUser > 0, name);
        assert.deepEqual(spec.securityContext.seccompProfile, { type: "RuntimeDefault" }, name);
        for (const c of spec.containers) {
          assert.equal(c.securityContext.readOnlyRootFilesystem, true, name);
          assert.equal(c.securityContext.allowPrivilegeEscalation, false, name);
          assert.deepEqual(c.securityContext.capabilities, { drop: ["ALL"] }, name);
          assert.ok(c.resources?.requests?.memory, `${name} requests memory`);
          assert.ok(c.resources?.limits?.memory, `${name} limits memory`);
        }
      }
    });

    test(`${f}: API tokens are mounted only in the three components, never in the test pod`, () => {
      const objects = objectsOf(f);
      for (const w of workloads(objects)) {
        assert.equal(w.spec.template.spec.automountServiceAccountToken, true, w.metadata.name);
        assert.equal(w.spec.template.spec.serviceAccountName, w.metadata.name);
      }
      for (const sa of objects.filter((o) => o.kind === "ServiceAccount")) {
        assert.equal(sa.automountServiceAccountToken, false, sa.metadata.name);
      }
      for (const pod of objects.filter((o) => o.kind === "Pod")) {
        assert.equal(pod.spec.automountServiceAccountToken, false, pod.metadata.name);
        assert.equal(pod.spec.serviceAccountName, undefined);
      }
    });

    test(`${f}: arguments tie the components to one namespace, ShardMap and cluster id`, () => {
      const objects = objectsOf(f);
      const op = find(objects, "Deployment", "berth-operator");
      const wk = find(objects, "StatefulSet", "berth-worker");
      const gw = find(objects, "Deployment", "berth-gateway");
      assert.deepEqual(container(op).command, ["berth-operator"]);
      assert.deepEqual(container(wk).command, ["berth-worker"]);
      assert.deepEqual(container(gw).command, ["berth-gateway"]);
      for (const w of [op, wk, gw]) assert.equal(flag(w, "--cluster-id"), "berth");
      assert.equal(flag(op, "--namespace"), "berth");
      assert.equal(flag(op, "--shard-map"), "berth");
      assert.equal(flag(op, "--identity"), "$(POD_NAME)");
      assert.equal(flag(op, "--http"), "0.0.0.0:9300");
      assert.equal(flag(wk, "--shard-map-resource"), "berth/berth");
      assert.equal(flag(gw, "--shard-map-resource"), "berth/berth");
      assert.equal(flag(wk, "--id"), "$(POD_NAME)");
      assert.equal(flag(wk, "--advertise"), "$(POD_IP):7000");
      assert.equal(flag(wk, "--lease-owner-pod"), "$(POD_NAME)");
      assert.equal(flag(op, "--lease-owner-pod"), "$(POD_NAME)");
      assert.match(flag(wk, "--journal") ?? "", /^cassandra:\/\/[^@]+\/berth\?dc=/);
      const env = (w: K8sObject) =>
        Object.fromEntries(
          container(w).env.map((e: { name: string; valueFrom?: unknown }) => [e.name, e.valueFrom]),
        );
      for (const w of [op, wk, gw]) {
        assert.deepEqual(env(w).POD_NAME, { fieldRef: { fieldPath: "metadata.name" } });
        assert.deepEqual(env(w).POD_NAMESPACE, { fieldRef: { fieldPath: "metadata.namespace" } });
      }
      assert.deepEqual(env(wk).POD_IP, { fieldRef: { fieldPath: "status.podIP" } });
      const grace = wk.spec.template.spec.terminationGracePeriodSeconds;
      assert.ok(
        grace * 1000 > Number(flag(wk, "--hand-off-timeout-ms")),
        `grace ${grace} s vs hand-off ${flag(wk, "--hand-off-timeout-ms")} ms`,
      );
      const pdb = find(objects, "PodDisruptionBudget", "berth-worker");
      assert.equal(pdb.spec.maxUnavailable, 1);
      assert.equal(find(objects, "Service", "berth-worker").spec.clusterIP, "None");
      assert.equal(wk.spec.serviceName, "berth-worker");
    });
  }

  test("selectors do not change when the chart version and appVersion do", async () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-chart-"));
    try {
      const copy = join(dir, "berth");
      cpSync(CHART_DIR, copy, { recursive: true });
      const chartYaml = readFileSync(join(copy, "Chart.yaml"), "utf8")
        .replace(/^version: .*$/m, "version: 7.8.9")
        .replace(/^appVersion: .*$/m, 'appVersion: "9.9.9"');
      writeFileSync(join(copy, "Chart.yaml"), chartYaml);
      const before = selectors(objectsOf("defaults.yaml"));
      const after = await render(helm, { chart: copy });
      assert.deepEqual(selectors(after), before);
      const wk = find(after, "StatefulSet", "berth-worker");
      assert.equal(wk.metadata.labels?.["helm.sh/chart"], "berth-7.8.9", "the copy was rendered");
      assert.equal(container(wk).image, "berth:9.9.9", "image tag defaults to appVersion");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("defaults: a ClusterIP gateway Service on gRPC, 2 operators, 3 workers, soft anti-affinity", () => {
    const objects = objectsOf("defaults.yaml");
    const svc = find(objects, "Service", "berth-gateway");
    assert.equal(svc.spec.type, "ClusterIP");
    assert.deepEqual(svc.spec.ports, [
      { name: "grpc", port: 50051, targetPort: "grpc", protocol: "TCP", appProtocol: "grpc" },
    ]);
    assert.equal(find(objects, "Deployment", "berth-operator").spec.replicas, 2);
    const wk = find(objects, "StatefulSet", "berth-worker");
    assert.equal(wk.spec.replicas, 3);
    assert.equal(wk.spec.podManagementPolicy, "Parallel");
    const anti = wk.spec.template.spec.affinity.podAntiAffinity;
    assert.equal(anti.requiredDuringSchedulingIgnoredDuringExecution, undefined);
    assert.equal(anti.preferredDuringSchedulingIgnoredDuringExecution[0].weight, 100);
    assert.equal(flag(find(objects, "Deployment", "berth-operator"), "--quorum"), undefined);
    assert.equal(
      flag(wk, "--journal"),
      "cassandra://cassandra.example.com:9042/berth?dc=datacenter1&rf=1&consistency=QUORUM",
    );
    for (const w of workloads(objects)) {
      assert.ok(!args(w).includes("--internal-tls-dir"), `${w.metadata.name}: TLS is off`);
      assert.equal(w.spec.template.spec.volumes, undefined);
    }
    assert.equal(objects.filter((o) => o.kind === "NetworkPolicy").length, 0);
    assert.equal(objects.filter((o) => o.kind === "HorizontalPodAutoscaler").length, 0);
    assert.equal(objects.filter((o) => o.kind === "Secret").length, 0);
  });

  test("defaults: the helm test pool and pod are test hooks; the pod calls the gateway Service", () => {
    const objects = objectsOf("defaults.yaml");
    const pool = find(objects, "CapacityPool", "berth-helm-test");
    assert.equal(pool.metadata.annotations?.["helm.sh/hook"], "test");
    assert.match(pool.metadata.annotations?.["helm.sh/hook-delete-policy"] ?? "", /hook-succeeded/);
    const pod = find(objects, "Pod", "berth-test");
    assert.equal(pod.metadata.annotations?.["helm.sh/hook"], "test");
    assert.ok(
      Number(pool.metadata.annotations?.["helm.sh/hook-weight"]) <
        Number(pod.metadata.annotations?.["helm.sh/hook-weight"]),
      "the pool is created before the pod",
    );
    assert.equal(pod.spec.restartPolicy, "Never");
    const script: string = pod.spec.containers[0].args[0];
    assert.match(
      script,
      /BERTH_ADDRESS="\$BERTH_GATEWAY_SERVICE_HOST:\$BERTH_GATEWAY_SERVICE_PORT_GRPC"/,
    );
    assert.match(script, /retry berth health\n/);
    assert.match(
      script,
      /berth reserve berth\/berth-helm-test 1 --request-id "helm-test-\$POD_UID"/,
    );
    assert.match(script, /retry berth release "\$id"/);
  });

  test("TLS on: the three components mount the Secret and verify the worker Service's name", () => {
    const objects = objectsOf("tls.yaml");
    for (const w of workloads(objects)) {
      assert.equal(flag(w, "--internal-tls-dir"), "/etc/berth/internal-tls", w.metadata.name);
      assert.equal(
        flag(w, "--internal-tls-server-name"),
        "berth-worker.berth.svc.cluster.local",
        w.metadata.name,
      );
      assert.deepEqual(container(w).volumeMounts, [
        { name: "internal-tls", mountPath: "/etc/berth/internal-tls", readOnly: true },
      ]);
      assert.equal(w.spec.template.spec.volumes[0].secret.secretName, "berth-internal-tls");
    }
  });

  test("TLS file: Cassandra hosts, replication and credentials from the existing Secret", () => {
    const objects = objectsOf("tls.yaml");
    const wk = find(objects, "StatefulSet", "berth-worker");
    assert.equal(
      flag(wk, "--journal"),
      "cassandra://10.0.0.10,10.0.0.11:9142/berth?dc=dc1&replication=dc1:3,dc2:3&consistency=LOCAL_QUORUM&timeoutMs=5000",
    );
    const env = container(wk).env as { name: string; valueFrom?: unknown }[];
    assert.deepEqual(env.find((e) => e.name === "BERTH_CASSANDRA_USERNAME")?.valueFrom, {
      secretKeyRef: { name: "cassandra-credentials", key: "user" },
    });
    assert.deepEqual(env.find((e) => e.name === "BERTH_CASSANDRA_PASSWORD")?.valueFrom, {
      secretKeyRef: { name: "cassandra-credentials", key: "pass" },
    });
    assert.equal(objects.filter((o) => o.kind === "Secret").length, 0, "existing Secret used");
  });

  test("NetworkPolicy on: only gateways, operators and workers reach the workers' gRPC port", () => {
    const objects = objectsOf("network-policy.yaml");
    const wk = find(objects, "NetworkPolicy", "berth-worker");
    const [grpc, metrics] = wk.spec.ingress;
    assert.deepEqual(grpc.ports, [{ port: "grpc", protocol: "TCP" }]);
    assert.deepEqual(
      grpc.from.map((p: { podSelector: { matchLabels: Record<string, string> } }) => {
        assert.deepEqual(Object.keys(p), ["podSelector"], "pods of this namespace only");
        return p.podSelector.matchLabels["app.kubernetes.io/component"];
      }),
      ["gateway", "operator", "worker"],
    );
    const prometheus = {
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "observability" } },
      podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
    };
    assert.deepEqual(metrics, {
      ports: [{ port: "http-metrics", protocol: "TCP" }],
      from: [prometheus],
    });
    const gw = find(objects, "NetworkPolicy", "berth-gateway");
    assert.deepEqual(gw.spec.ingress[0].from, [
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "frontend" } } },
      {
        podSelector: {
          matchLabels: {
            "app.kubernetes.io/name": "berth",
            "app.kubernetes.io/instance": "berth",
            "app.kubernetes.io/component": "test",
          },
        },
      },
    ]);
    assert.deepEqual(find(objects, "NetworkPolicy", "berth-operator").spec.ingress, [
      { ports: [{ port: "http-metrics", protocol: "TCP" }], from: [prometheus] },
    ]);
    const secret = find(objects, "Secret", "berth-cassandra");
    assert.deepEqual(secret.data, {
      username: Buffer.from("berth").toString("base64"),
      password: Buffer.from("not-a-real-password").toString("base64"),
    });
    const wkArgs = args(find(objects, "StatefulSet", "berth-worker")).join(" ");
    assert.ok(!wkArgs.includes("not-a-real-password"), "the password is never an argument");
  });

  test("HPA on: the gateway Deployment leaves replicas to the HorizontalPodAutoscaler", () => {
    const objects = objectsOf("hpa.yaml");
    const gw = find(objects, "Deployment", "berth-gateway");
    assert.equal(gw.spec.replicas, undefined);
    const hpa = find(objects, "HorizontalPodAutoscaler", "berth-gateway");
    assert.deepEqual(hpa.spec.scaleTargetRef, {
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: "berth-gateway",
    });
    assert.equal(hpa.spec.minReplicas, 3);
    assert.equal(hpa.spec.maxReplicas, 10);
    assert.equal(hpa.spec.metrics[0].resource.target.averageUtilization, 60);
    assert.equal(find(objects, "Service", "berth-gateway").spec.type, "LoadBalancer");
    const wk = find(objects, "StatefulSet", "berth-worker");
    assert.equal(wk.spec.replicas, 5);
    const anti = wk.spec.template.spec.affinity.podAntiAffinity;
    assert.equal(
      anti.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey,
      "kubernetes.io/hostname",
    );
    const op = find(objects, "Deployment", "berth-operator");
    assert.equal(flag(op, "--quorum"), "3");
    assert.equal(flag(op, "--pool-namespace"), "delivery");
    assert.equal(objects.filter((o) => o.metadata.annotations?.["helm.sh/hook"]).length, 0);
  });

  test("monitoring on: each monitoring template that exists renders its object", () => {
    const objects = objectsOf("monitoring.yaml");
    const expected: [string, string][] = [
      ["servicemonitor.yaml", "ServiceMonitor"],
      ["prometheusrule.yaml", "PrometheusRule"],
      ["dashboard-configmap.yaml", "ConfigMap"],
    ];
    const off = objectsOf("defaults.yaml");
    for (const [file, kind] of expected) {
      let present = true;
      try {
        readFileSync(join(CHART_DIR, "templates", file));
      } catch {
        present = false;
      }
      if (!present) continue;
      assert.ok(
        objects.some((o) => o.kind === kind),
        `${file}: no ${kind} rendered`,
      );
      assert.ok(!off.some((o) => o.kind === kind), `${kind} is off by default`);
    }
  });

  test("the chart README's values table covers every key of values.yaml, and only those", () => {
    const values = parse(readFileSync(join(CHART_DIR, "values.yaml"), "utf8")) as object;
    const readme = readFileSync(join(CHART_DIR, "README.md"), "utf8");
    const table = new Set([...readme.matchAll(/^\| `([^`]+)`\s+\|/gm)].map((m) => m[1] as string));
    const leaves: string[] = [];
    const walk = (v: unknown, path: string[]) => {
      if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length > 0) {
        for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
      } else leaves.push(path.join("."));
    };
    walk(values, []);
    for (const leaf of leaves) {
      const parts = leaf.split(".");
      const covered = parts.some((_, i) => table.has(parts.slice(0, i + 1).join(".")));
      assert.ok(covered, `values.yaml key ${leaf} is missing from charts/berth/README.md`);
    }
    for (const key of table) {
      let v: unknown = values;
      for (const k of key.split(".")) v = (v as Record<string, unknown> | undefined)?.[k];
      assert.notEqual(v, undefined, `README lists ${key}, which values.yaml does not have`);
    }
  });

  describe("the values schema and cross-checks refuse bad values with the path and the reason", () => {
    const cases: {
      title: string;
      set?: string[];
      setString?: string[];
      setJson?: string[];
      message: RegExp;
    }[] = [
      {
        title: "a misspelt key",
        set: ["worker.replica=3"],
        message: /at '\/worker': additional properties 'replica' not allowed/,
      },
      {
        title: "a misspelt top-level key",
        set: ["networkPolicies.enabled=true"],
        message: /at '': additional properties 'networkPolicies' not allowed/,
      },
      {
        title: "a string for an integer",
        setString: ["worker.replicas=three"],
        message: /at '\/worker\/replicas': got string, want integer/,
      },
      {
        title: "a value outside the enum",
        set: ["image.pullPolicy=Sometimes"],
        message: /at '\/image\/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'/,
      },
      {
        title: "a port out of range",
        set: ["worker.grpcPort=70000"],
        message: /at '\/worker\/grpcPort': maximum: got 70,000, want 65,535/,
      },
      {
        title: "no Cassandra host",
        setJson: ["cassandra.hosts=[]"],
        message: /at '\/cassandra\/hosts': minItems: got 0, want 1/,
      },
      {
        title: "a grace period shorter than the hand-off",
        set: ["worker.terminationGracePeriodSeconds=30"],
        message:
          /worker\.terminationGracePeriodSeconds \(30 s\) must be longer than worker\.handOffTimeoutMs \(30000 ms\)/,
      },
      {
        title: "TLS without a Secret",
        set: ["tls.enabled=true"],
        message: /tls\.secretName is required when tls\.enabled is true/,
      },
      {
        title: "Cassandra auth without credentials",
        set: ["cassandra.auth.enabled=true"],
        message: /set cassandra\.auth\.existingSecret, or both cassandra\.auth\.username and/,
      },
    ];
    for (const c of cases) {
      test(c.title, async () => {
        const r = await helmTemplate(helm, {
          ...(c.set ? { set: c.set } : {}),
          ...(c.setString ? { setString: c.setString } : {}),
          ...(c.setJson ? { setJson: c.setJson } : {}),
        });
        assert.notEqual(r.code, 0, "helm template must fail");
        assert.match(r.stderr, c.message);
      });
    }
  });

  describe("RBAC objects equal kubernetes/src/rbac.ts for the same namespace and names", () => {
    const RBAC_KINDS = new Set([
      "Role",
      "ClusterRole",
      "RoleBinding",
      "ClusterRoleBinding",
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
    ]);
    for (const [release, namespace, prefix] of [
      ["berth", "berth", "berth"],
      ["prod", "capacity", "prod-berth"],
    ] as const) {
      test(`release ${release} in namespace ${namespace}`, async () => {
        const objects = (await render(helm, { release, namespace })).filter((o) =>
          RBAC_KINDS.has(o.kind),
        );
        const want = rbacObjects({
          namespace,
          serviceAccounts: {
            operator: `${prefix}-operator`,
            worker: `${prefix}-worker`,
            gateway: `${prefix}-gateway`,
          },
        });
        const key = (o: { kind?: string; metadata?: { name?: string } }) =>
          `${o.kind}/${o.metadata?.name}`;
        assert.deepEqual(objects.map(key).sort(), want.map(key).sort());
        for (const w of want) {
          const got = objects.find((o) => key(o) === key(w));
          assert.ok(got);
          // The chart adds its own labels (name, instance, version, …) to rbac.ts's.
          const { labels, ...gotMeta } = got.metadata;
          const { labels: wantLabels, ...wantMeta } = w.metadata ?? {};
          for (const [k, v] of Object.entries(wantLabels ?? {})) {
            assert.equal(labels?.[k], v, `${key(w)} label ${k}`);
          }
          assert.deepEqual(
            { ...got, metadata: gotMeta },
            JSON.parse(JSON.stringify({ ...w, metadata: wantMeta })),
            key(w),
          );
        }
      });
    }
  });
});
