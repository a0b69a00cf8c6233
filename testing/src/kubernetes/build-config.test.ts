import assert from "node:assert/strict";
import { test } from "node:test";
import {
  buildNice,
  COMMANDS,
  CONTROL_PLANE_COMMANDS,
  cacheLayout,
  commandSpecs,
  etcdWrapperFiles,
  expectedStamp,
  goBuildArgs,
  KubernetesBuildSpecError,
  kubernetesCacheRoot,
  kubernetesWrapperGoMod,
  ldflags,
  prometheusRelease,
  stagingModules,
  stagingVersion,
  stampMatches,
  toolsGo,
  toolWrapperFiles,
} from "./build-config.js";

// The shape of k8s.io/kubernetes's go.mod (abridged from v1.36.3): staging modules pinned
// at v0.0.0 in require, replaced by ./staging dirs; other k8s.io modules at real versions.
const UPSTREAM = `// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
	github.com/JeffAshton/win_pdh v0.0.0-20161109143554-76bb4ee9f0ab
	k8s.io/api v0.0.0
	k8s.io/apiserver v0.0.0
	k8s.io/klog/v2 v2.140.0
	k8s.io/kube-openapi v0.0.0-20260317180543-43fb72c5454a
	k8s.io/kubectl v0.0.0
	k8s.io/utils v0.0.0-20260210185600-b8788abfbbc2
)

require (
	k8s.io/cri-client v0.0.0 // indirect
	sigs.k8s.io/json v0.0.0-20250730193827-2d320260d730 // indirect
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/apiserver => ./staging/src/k8s.io/apiserver
	k8s.io/kubectl => ./staging/src/k8s.io/kubectl
	k8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)
`;

test("staging modules are those pinned at v0.0.0 or replaced by ./staging, nothing else", () => {
  assert.deepEqual(stagingModules(UPSTREAM), [
    "k8s.io/api",
    "k8s.io/apiserver",
    "k8s.io/cri-client",
    "k8s.io/kubectl",
    "k8s.io/sample-controller",
  ]);
});

test("the wrapper go.mod requires k8s.io/kubernetes and replaces each staging module by v0.N.M", () => {
  const mod = kubernetesWrapperGoMod("v1.36.3", UPSTREAM);
  assert.match(mod, /^module berth\.local\/kbuild$/m);
  assert.match(mod, /^go 1\.26\.0$/m);
  assert.match(mod, /^godebug default=go1\.26$/m);
  assert.match(mod, /^require k8s\.io\/kubernetes v1\.36\.3$/m);
  const replaces = [...mod.matchAll(/^\t(\S+) => (\S+) (\S+)$/gm)].map((m) => [m[1], m[2], m[3]]);
  assert.deepEqual(replaces, [
    ["k8s.io/api", "k8s.io/api", "v0.36.3"],
    ["k8s.io/apiserver", "k8s.io/apiserver", "v0.36.3"],
    ["k8s.io/cri-client", "k8s.io/cri-client", "v0.36.3"],
    ["k8s.io/kubectl", "k8s.io/kubectl", "v0.36.3"],
    ["k8s.io/sample-controller", "k8s.io/sample-controller", "v0.36.3"],
  ]);
  assert.doesNotMatch(mod, /klog|kube-openapi|k8s\.io\/utils|staging/);
});

test("bad versions and a go.mod that is not Kubernetes's are rejected with a clear error", () => {
  assert.equal(stagingVersion("v1.36.3"), "v0.36.3");
  assert.throws(() => stagingVersion("1.36.3"), KubernetesBuildSpecError);
  assert.throws(() => stagingVersion("v2.0.0"), KubernetesBuildSpecError);
  assert.throws(
    () => kubernetesWrapperGoMod("v1.36.3", "module example.com/x\n\ngo 1.22\n"),
    /no k8s.io staging modules/,
  );
  assert.throws(() => kubernetesWrapperGoMod("v1.36.3", "k8s.io/api v0.0.0\n"), /no go directive/);
  assert.throws(() => etcdWrapperFiles("3.6.16"), KubernetesBuildSpecError);
});

test("tools.go imports each command package under the tools build tag", () => {
  const go = toolsGo(["k8s.io/kubernetes/cmd/kubectl", "k8s.io/kubernetes/cmd/kube-apiserver"]);
  assert.match(go, /^\/\/go:build tools$/m);
  assert.match(go, /^package tools$/m);
  assert.deepEqual(
    [...go.matchAll(/^\t_ "(\S+)"$/gm)].map((m) => m[1]),
    ["k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl"],
  );
});

test("the etcd wrapper is a main package calling etcdmain.Main at the pinned server version", () => {
  const files = etcdWrapperFiles("v3.6.16");
  assert.match(files["go.mod"] ?? "", /^require go\.etcd\.io\/etcd\/server\/v3 v3\.6\.16$/m);
  assert.match(files["main.go"] ?? "", /etcdmain\.Main\(os\.Args\)/);
});

test("Kubernetes binaries are version-stamped and stripped; etcd is stripped", () => {
  const versions = { kubernetes: "v1.36.3", etcd: "v3.6.16" };
  const k = ldflags("kubernetes", versions);
  assert.match(k, /^-s -w /);
  for (const p of ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]) {
    assert.ok(k.includes(`-X ${p}.gitVersion=v1.36.3`), k);
    assert.ok(k.includes(`-X ${p}.gitMajor=1`), k);
    assert.ok(k.includes(`-X ${p}.gitMinor=36`), k);
  }
  assert.equal(ldflags("etcd", versions), "-s -w");
  const args = goBuildArgs("kubernetes", versions, ["a/b", "c/d"], "/tmp/out");
  assert.deepEqual(args.slice(0, 3), ["build", "-v", "-trimpath"]);
  assert.deepEqual(args.slice(-4), ["-o", "/tmp/out/", "a/b", "c/d"]);
});

test("a stamp matches only the same command, version and flags, with a size", () => {
  const v = { kubernetes: "v1.36.3", etcd: "v3.6.16" };
  const spec = COMMANDS["kube-apiserver"];
  assert.ok(spec);
  const stamp = { ...expectedStamp(spec, v), size: 123 };
  assert.ok(stampMatches(stamp, spec, v));
  assert.ok(!stampMatches({ ...stamp, size: 0 }, spec, v));
  assert.ok(!stampMatches(stamp, spec, { ...v, kubernetes: "v1.36.4" }));
  assert.ok(!stampMatches({ ...stamp, flags: "0000" }, spec, v));
  assert.ok(!stampMatches(null, spec, v));
  // etcd's stamp follows the etcd version, not Kubernetes's.
  const etcd = COMMANDS.etcd;
  assert.ok(etcd);
  const etcdStamp = { ...expectedStamp(etcd, v), size: 1 };
  assert.ok(stampMatches(etcdStamp, etcd, { ...v, kubernetes: "v1.37.0" }));
  assert.ok(!stampMatches(etcdStamp, etcd, { ...v, etcd: "v3.6.17" }));
});

test("the cache lives under XDG_CACHE_HOME (or ~/.cache), keyed by version, never in the clone", () => {
  assert.equal(kubernetesCacheRoot({}, "/home/u"), "/home/u/.cache/berth/kubernetes");
  assert.equal(kubernetesCacheRoot({ XDG_CACHE_HOME: "/x" }, "/home/u"), "/x/berth/kubernetes");
  assert.equal(
    kubernetesCacheRoot({ XDG_CACHE_HOME: "/x", BERTH_KUBERNETES_CACHE: "/c" }, "/home/u"),
    "/c",
  );
  const l = cacheLayout("/x/berth/kubernetes", "v1.36.3");
  assert.equal(l.bin, "/x/berth/kubernetes/v1.36.3/bin");
  assert.equal(l.gocache, "/x/berth/kubernetes/v1.36.3/gocache");
  assert.equal(l.gomodcache, "/x/berth/kubernetes/v1.36.3/gomodcache");
  assert.equal(l.wrapper("etcd"), "/x/berth/kubernetes/v1.36.3/wrap/etcd");
  assert.equal(l.lock, "/x/berth/kubernetes/v1.36.3/build.lock");
});

test("commands are looked up by name; an unknown one lists the known ones", () => {
  assert.deepEqual(
    commandSpecs(CONTROL_PLANE_COMMANDS).map((s) => s.module),
    ["etcd", "kubernetes", "kubernetes"],
  );
  assert.throws(() => commandSpecs(["kubelett"]), /unknown command "kubelett"; known: .*kubelet/);
});

test("BERTH_BUILD_NICE accepts 0–19 and rejects anything else", () => {
  assert.equal(buildNice({}), 0);
  assert.equal(buildNice({ BERTH_BUILD_NICE: "19" }), 19);
  assert.throws(() => buildNice({ BERTH_BUILD_NICE: "20" }), KubernetesBuildSpecError);
  assert.throws(() => buildNice({ BERTH_BUILD_NICE: "high" }), KubernetesBuildSpecError);
});

test("helm and promtool wrappers require one upstream module and import its command", () => {
  const helm = toolWrapperFiles("helm", "v3.22.0", ["helm.sh/helm/v3/cmd/helm"]);
  assert.match(helm["go.mod"] ?? "", /^module berth\.local\/helmbuild$/m);
  assert.match(helm["go.mod"] ?? "", /^require helm\.sh\/helm\/v3 v3\.22\.0$/m);
  assert.doesNotMatch(helm["go.mod"] ?? "", /replace/);
  assert.match(helm["tools.go"] ?? "", /^\t_ "helm\.sh\/helm\/v3\/cmd\/helm"$/m);
  const prom = toolWrapperFiles("promtool", "v0.316.0", [
    "github.com/prometheus/prometheus/cmd/promtool",
  ]);
  assert.match(prom["go.mod"] ?? "", /^require github\.com\/prometheus\/prometheus v0\.316\.0$/m);
  assert.throws(() => toolWrapperFiles("helm", "3.22.0", []), /helm version must look like vN/);
});

test("helm is stamped with its own and the harness's Kubernetes version (not Helm's v1.20 default)", () => {
  const v = { kubernetes: "v1.36.3", etcd: "v3.6.16" };
  const f = ldflags("helm", v);
  assert.match(f, /^-s -w /);
  assert.ok(f.includes("-X helm.sh/helm/v3/internal/version.version=v3.22.0"), f);
  for (const p of ["helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"]) {
    assert.ok(f.includes(`-X ${p}.k8sVersionMajor=1`), f);
    assert.ok(f.includes(`-X ${p}.k8sVersionMinor=36`), f);
  }
  assert.ok(ldflags("helm", { ...v, helm: "v3.22.1" }).includes("version.version=v3.22.1"));
  assert.deepEqual(
    goBuildArgs("helm", v, ["helm.sh/helm/v3/cmd/helm"], "/o").slice(0, 4),
    ["build", "-v", "-trimpath", "-ldflags"],
    "no -tags for helm",
  );
});

test("promtool is built with -tags remove_all_sd and stamped with the Prometheus release", () => {
  const v = { kubernetes: "v1.36.3", etcd: "v3.6.16" };
  assert.equal(prometheusRelease("v0.316.0"), "3.16.0");
  assert.equal(prometheusRelease("v0.305.2"), "3.5.2");
  assert.throws(() => prometheusRelease("v3.16.0"), /must look like v0\.3XY\.Z/);
  assert.ok(
    ldflags("promtool", v).includes("-X github.com/prometheus/common/version.Version=3.16.0"),
  );
  const args = goBuildArgs("promtool", v, ["github.com/prometheus/prometheus/cmd/promtool"], "/o");
  assert.deepEqual(args.slice(3, 5), ["-tags", "remove_all_sd"]);
  // The tags are part of the stamp: a promtool built without them is not reused.
  const spec = COMMANDS.promtool;
  assert.ok(spec);
  const stamp = expectedStamp(spec, v);
  assert.equal(stamp.version, "v0.316.0");
  assert.ok(stampMatches({ ...stamp, size: 1 }, spec, v));
  assert.ok(!stampMatches({ ...stamp, size: 1 }, spec, { ...v, promtool: "v0.315.1" }));
  assert.deepEqual(
    commandSpecs(["helm", "promtool"]).map((s) => s.module),
    ["helm", "promtool"],
  );
});
