/**
 * Pure builders for the Kubernetes toolchain build: versions, the commands the harness
 * knows how to build, the throw-away wrapper modules (go.mod, tools.go, main.go), the
 * version-stamping ldflags and the cache layout. No IO here; build.ts runs `go`.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

/** The Kubernetes release the harness builds (kube-apiserver, kubectl, …). */
export const DEFAULT_KUBERNETES_VERSION = "v1.36.3";
/** The etcd release the harness builds (a wrapper module calling etcdmain.Main). */
export const DEFAULT_ETCD_VERSION = "v3.6.16";
/** The Helm release the harness builds (`helm lint/template` for the chart tests). */
export const DEFAULT_HELM_VERSION = "v3.22.0";
/**
 * The Prometheus Go module version promtool is built from (v0.3XY.Z is Prometheus 3.XY.Z;
 * its go.mod needs Go 1.26.7, which the harness's Go ≥ 1.26 toolchain satisfies).
 */
export const DEFAULT_PROMTOOL_VERSION = "v0.316.0";
/** Fixed build date stamped into binaries, so two builds of one version are identical. */
export const BUILD_DATE = "2026-01-01T00:00:00Z";

/** The wrapper modules the harness can generate; each is built by one `go build`. */
export type WrapperModuleId = "kubernetes" | "etcd" | "helm" | "promtool";

/** A command the harness can build: which wrapper module builds it, and its Go package. */
export interface CommandSpec {
  /** Binary name in `bin/`. */
  readonly name: string;
  readonly module: WrapperModuleId;
  /** Import path of its `main` package (as seen from the wrapper module). */
  readonly goPackage: string;
}

/**
 * Every command the harness knows. Adding one (kubelet, kube-proxy, helm, …) is a new
 * entry here (and, for a new kind of module, a case in {@link wrapperModuleFiles}).
 */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  "kube-apiserver": {
    name: "kube-apiserver",
    module: "kubernetes",
    goPackage: "k8s.io/kubernetes/cmd/kube-apiserver",
  },
  kubectl: { name: "kubectl", module: "kubernetes", goPackage: "k8s.io/kubernetes/cmd/kubectl" },
  "kube-controller-manager": {
    name: "kube-controller-manager",
    module: "kubernetes",
    goPackage: "k8s.io/kubernetes/cmd/kube-controller-manager",
  },
  "kube-scheduler": {
    name: "kube-scheduler",
    module: "kubernetes",
    goPackage: "k8s.io/kubernetes/cmd/kube-scheduler",
  },
  kubelet: { name: "kubelet", module: "kubernetes", goPackage: "k8s.io/kubernetes/cmd/kubelet" },
  "kube-proxy": {
    name: "kube-proxy",
    module: "kubernetes",
    goPackage: "k8s.io/kubernetes/cmd/kube-proxy",
  },
  etcd: { name: "etcd", module: "etcd", goPackage: "berth.local/etcdbuild" },
  helm: { name: "helm", module: "helm", goPackage: "helm.sh/helm/v3/cmd/helm" },
  promtool: {
    name: "promtool",
    module: "promtool",
    goPackage: "github.com/prometheus/prometheus/cmd/promtool",
  },
};

/**
 * The wrapper modules that simply require one upstream module at a version and import
 * one of its commands from tools.go (upstream has no replace directives, so `go mod tidy`
 * resolves exactly upstream's requirements).
 */
export const TOOL_MODULES: Readonly<
  Record<"helm" | "promtool", { readonly path: string; readonly tags: readonly string[] }>
> = {
  helm: { path: "helm.sh/helm/v3", tags: [] },
  // remove_all_sd drops every service-discovery plugin promtool never needs: ~½ the CPU.
  promtool: { path: "github.com/prometheus/prometheus", tags: ["remove_all_sd"] },
};

/** What the control plane needs (this is all `npm test` builds today). */
export const CONTROL_PLANE_COMMANDS: readonly string[] = ["etcd", "kube-apiserver", "kubectl"];

/** Versions a build is keyed by. */
export interface BuildVersions {
  readonly kubernetes: string;
  readonly etcd: string;
  /** Default {@link DEFAULT_HELM_VERSION}. */
  readonly helm?: string;
  /** Default {@link DEFAULT_PROMTOOL_VERSION}. */
  readonly promtool?: string;
}

/** Thrown when a command name, version or upstream go.mod is not something the harness can build. */
export class KubernetesBuildSpecError extends Error {
  override readonly name = "KubernetesBuildSpecError";
}

/** Looks up command specs by name, rejecting unknown names with the list of known ones. */
export function commandSpecs(names: readonly string[]): CommandSpec[] {
  return [...new Set(names)].map((n) => {
    const spec = COMMANDS[n];
    if (!spec) {
      throw new KubernetesBuildSpecError(
        `unknown command "${n}"; known: ${Object.keys(COMMANDS).join(", ")}`,
      );
    }
    return spec;
  });
}

/** `v1.36.3` → `v0.36.3`: the tag of the published staging modules (k8s.io/api, …). */
export function stagingVersion(kubernetesVersion: string): string {
  const m = /^v1\.(\d+)\.(\d+)$/.exec(kubernetesVersion);
  if (!m) {
    throw new KubernetesBuildSpecError(
      `Kubernetes version must look like v1.N.M, got "${kubernetesVersion}"`,
    );
  }
  return `v0.${m[1]}.${m[2]}`;
}

/**
 * The k8s.io modules that k8s.io/kubernetes's go.mod pins at v0.0.0 or replaces with a
 * `./staging/…` directory: they must be replaced by their published tags. Sorted, unique.
 */
export function stagingModules(upstreamGoMod: string): string[] {
  const found = new Set<string>();
  for (const raw of upstreamGoMod.split("\n")) {
    const line = raw.replace(/\/\/.*$/, "").trim();
    const pinned = /^(?:require\s+)?(k8s\.io\/[A-Za-z0-9._/-]+)\s+v0\.0\.0$/.exec(line);
    const staged = /^(?:replace\s+)?(k8s\.io\/[A-Za-z0-9._/-]+)\s+=>\s+\.\/staging\//.exec(line);
    const name = pinned?.[1] ?? staged?.[1];
    if (name) found.add(name);
  }
  return [...found].sort();
}

/** The `go` and `godebug` directives of a go.mod (kept so binaries behave as upstream's). */
export function goDirectives(upstreamGoMod: string): { go: string; godebug: string[] } {
  const go = /^go\s+(\S+)\s*$/m.exec(upstreamGoMod)?.[1];
  if (!go) throw new KubernetesBuildSpecError("upstream go.mod has no go directive");
  const godebug = [...upstreamGoMod.matchAll(/^godebug\s+(.+?)\s*$/gm)].map((m) => m[1] as string);
  return { go, godebug };
}

/**
 * go.mod of the throw-away module that builds k8s.io/kubernetes commands: requires
 * k8s.io/kubernetes at `kubernetesVersion` and replaces every staging module with its
 * published tag (`go install k8s.io/kubernetes/cmd/…@v1.x` fails on the v0.0.0 pins).
 */
export function kubernetesWrapperGoMod(kubernetesVersion: string, upstreamGoMod: string): string {
  const sv = stagingVersion(kubernetesVersion);
  const modules = stagingModules(upstreamGoMod);
  if (modules.length === 0) {
    throw new KubernetesBuildSpecError(
      "upstream go.mod has no k8s.io staging modules: not the k8s.io/kubernetes go.mod?",
    );
  }
  const { go, godebug } = goDirectives(upstreamGoMod);
  return [
    "// Generated by the Berth Kubernetes harness (testing/src/kubernetes): a throw-away module",
    `// that builds k8s.io/kubernetes ${kubernetesVersion} commands. Do not edit.`,
    "module berth.local/kbuild",
    "",
    `go ${go}`,
    ...(godebug.length ? ["", ...godebug.map((g) => `godebug ${g}`)] : []),
    "",
    `require k8s.io/kubernetes ${kubernetesVersion}`,
    "",
    "replace (",
    ...modules.map((m) => `\t${m} => ${m} ${sv}`),
    ")",
    "",
  ].join("\n");
}

/** tools.go importing each command's package, so `go mod tidy` keeps their dependencies. */
export function toolsGo(goPackages: readonly string[]): string {
  return [
    "//go:build tools",
    "",
    "// Generated by the Berth Kubernetes harness. Do not edit.",
    "package tools",
    "",
    "import (",
    ...[...goPackages].sort().map((p) => `\t_ "${p}"`),
    ")",
    "",
  ].join("\n");
}

/** The two files of the etcd wrapper module (`go install` of etcd fails on its replaces). */
export function etcdWrapperFiles(etcdVersion: string): Record<string, string> {
  if (!/^v3\.\d+\.\d+$/.test(etcdVersion)) {
    throw new KubernetesBuildSpecError(`etcd version must look like v3.N.M, got "${etcdVersion}"`);
  }
  return {
    "go.mod": [
      "// Generated by the Berth Kubernetes harness: builds etcd from its server module. Do not edit.",
      "module berth.local/etcdbuild",
      "",
      "go 1.24",
      "",
      `require go.etcd.io/etcd/server/v3 ${etcdVersion}`,
      "",
    ].join("\n"),
    "main.go": [
      "// Generated by the Berth Kubernetes harness. Do not edit.",
      "package main",
      "",
      "import (",
      '\t"os"',
      "",
      '\t"go.etcd.io/etcd/server/v3/etcdmain"',
      ")",
      "",
      "func main() { etcdmain.Main(os.Args) }",
      "",
    ].join("\n"),
  };
}

/**
 * go.mod + tools.go of a wrapper module requiring one tool module (helm, prometheus) at
 * `version` and importing `goPackages` so `go mod tidy` keeps their dependencies.
 */
export function toolWrapperFiles(
  module: "helm" | "promtool",
  version: string,
  goPackages: readonly string[],
): Record<string, string> {
  if (!/^v\d+\.\d+\.\d+$/.test(version)) {
    throw new KubernetesBuildSpecError(`${module} version must look like vN.N.N, got "${version}"`);
  }
  const { path } = TOOL_MODULES[module];
  return {
    "go.mod": [
      `// Generated by the Berth Kubernetes harness: builds ${module} from ${path}. Do not edit.`,
      `module berth.local/${module}build`,
      "",
      // go mod tidy raises this to what the dependencies need.
      "go 1.24",
      "",
      `require ${path} ${version}`,
      "",
    ].join("\n"),
    "tools.go": toolsGo(goPackages),
  };
}

/** `v0.316.0` → `3.16.0`: the Prometheus release of a prometheus Go module version. */
export function prometheusRelease(moduleVersion: string): string {
  const m = /^v0\.(\d)(\d\d)\.(\d+)$/.exec(moduleVersion);
  if (!m) {
    throw new KubernetesBuildSpecError(
      `promtool module version must look like v0.3XY.Z, got "${moduleVersion}"`,
    );
  }
  return `${m[1]}.${Number(m[2])}.${m[3]}`;
}

/** `-ldflags` for a wrapper module: `-s -w` plus version stamping where upstream has it. */
export function ldflags(module: WrapperModuleId, versions: BuildVersions): string {
  const flags = ["-s", "-w"];
  if (module === "kubernetes") {
    const [major, minor] = versions.kubernetes.replace(/^v/, "").split(".");
    for (const p of ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]) {
      flags.push(
        `-X ${p}.gitVersion=${versions.kubernetes}`,
        `-X ${p}.gitMajor=${major}`,
        `-X ${p}.gitMinor=${minor}`,
        `-X ${p}.gitTreeState=clean`,
        `-X ${p}.buildDate=${BUILD_DATE}`,
      );
    }
  } else if (module === "helm") {
    // Without the Kubernetes version stamped in, Helm 3 assumes v1.20 for `helm template`
    // and `helm lint`, and a chart with kubeVersion ">=1.30.0-0" fails.
    const [major, minor] = versions.kubernetes.replace(/^v/, "").split(".");
    flags.push(
      `-X helm.sh/helm/v3/internal/version.version=${moduleVersion("helm", versions)}`,
      "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
      `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${major}`,
      `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${minor}`,
      `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${major}`,
      `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${minor}`,
    );
  } else if (module === "promtool") {
    const p = "github.com/prometheus/common/version";
    flags.push(
      `-X ${p}.Version=${prometheusRelease(moduleVersion("promtool", versions))}`,
      `-X ${p}.Branch=release`,
      `-X ${p}.BuildDate=${BUILD_DATE}`,
    );
  }
  return flags.join(" ");
}

/** The `-tags` a wrapper module is built with (none for most). */
export function buildTags(module: WrapperModuleId): readonly string[] {
  return module === "helm" || module === "promtool" ? TOOL_MODULES[module].tags : [];
}

/** The version a wrapper module builds. */
export function moduleVersion(module: WrapperModuleId, versions: BuildVersions): string {
  switch (module) {
    case "kubernetes":
      return versions.kubernetes;
    case "etcd":
      return versions.etcd;
    case "helm":
      return versions.helm ?? DEFAULT_HELM_VERSION;
    case "promtool":
      return versions.promtool ?? DEFAULT_PROMTOOL_VERSION;
  }
}

/** The `go build` arguments for several commands of one wrapper module, into `outDir`. */
export function goBuildArgs(
  module: WrapperModuleId,
  versions: BuildVersions,
  goPackages: readonly string[],
  outDir: string,
): string[] {
  const tags = buildTags(module);
  return [
    "build",
    "-v",
    "-trimpath",
    ...(tags.length ? ["-tags", tags.join(",")] : []),
    "-ldflags",
    ldflags(module, versions),
    "-o",
    `${outDir}/`,
    ...goPackages,
  ];
}

/** The environment `go` runs with: caches under the version dir, static binaries. */
export function goEnv(layout: CacheLayout, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...base,
    GOPATH: layout.gopath,
    GOMODCACHE: layout.gomodcache,
    GOCACHE: layout.gocache,
    CGO_ENABLED: "0",
    // -modcacherw: the module cache can be deleted with rm -rf.
    GOFLAGS: "-buildvcs=false -modcacherw",
  };
}

/**
 * What a completed binary's stamp records. A binary is reused only when its stamp equals
 * the one this code would write (so changing a version or the flags rebuilds).
 */
export interface BinaryStamp {
  readonly name: string;
  readonly goPackage: string;
  readonly module: WrapperModuleId;
  readonly version: string;
  /** sha256 of the ldflags (hex, 16 chars). */
  readonly flags: string;
  /** Size of the binary in bytes (checked on reuse; a truncated file is rebuilt). */
  readonly size: number;
}

/** The stamp of a command built with these versions, minus its size. */
export function expectedStamp(
  spec: CommandSpec,
  versions: BuildVersions,
): Omit<BinaryStamp, "size"> {
  return {
    name: spec.name,
    goPackage: spec.goPackage,
    module: spec.module,
    version: moduleVersion(spec.module, versions),
    flags: createHash("sha256")
      .update(
        `${ldflags(spec.module, versions)}|trimpath|cgo0` +
          (buildTags(spec.module).length ? `|tags=${buildTags(spec.module).join(",")}` : ""),
      )
      .digest("hex")
      .slice(0, 16),
  };
}

/** True when `stamp` (parsed JSON) describes `spec` at `versions` and has a size. */
export function stampMatches(stamp: unknown, spec: CommandSpec, versions: BuildVersions): boolean {
  if (typeof stamp !== "object" || stamp === null) return false;
  const s = stamp as Record<string, unknown>;
  const want = expectedStamp(spec, versions);
  return (
    (Object.keys(want) as (keyof typeof want)[]).every((k) => s[k] === want[k]) &&
    typeof s.size === "number" &&
    s.size > 0
  );
}

/** Where everything of one Kubernetes version lives; nothing of it is inside the clone. */
export interface CacheLayout {
  /** `<cache root>/<kubernetes version>` */
  readonly root: string;
  readonly bin: string;
  readonly gomodcache: string;
  readonly gocache: string;
  readonly gopath: string;
  /** Directory of a wrapper module. */
  readonly wrapper: (module: WrapperModuleId) => string;
  /** The lock serialising builds of this version across processes. */
  readonly lock: string;
}

/**
 * The cache root: `$BERTH_KUBERNETES_CACHE` if set, else
 * `${XDG_CACHE_HOME:-$HOME/.cache}/berth/kubernetes`.
 */
export function kubernetesCacheRoot(env: NodeJS.ProcessEnv, home: string): string {
  if (env.BERTH_KUBERNETES_CACHE) return env.BERTH_KUBERNETES_CACHE;
  const xdg = env.XDG_CACHE_HOME || join(home, ".cache");
  return join(xdg, "berth", "kubernetes");
}

/** The layout under `<cacheRoot>/<kubernetesVersion>`. */
export function cacheLayout(cacheRoot: string, kubernetesVersion: string): CacheLayout {
  const root = join(cacheRoot, kubernetesVersion);
  return {
    root,
    bin: join(root, "bin"),
    gomodcache: join(root, "gomodcache"),
    gocache: join(root, "gocache"),
    gopath: join(root, "gopath"),
    wrapper: (module) => join(root, "wrap", module),
    lock: join(root, "build.lock"),
  };
}

/** `BERTH_BUILD_NICE` as a nice increment 0–19 (default 0); anything else is rejected. */
export function buildNice(env: NodeJS.ProcessEnv): number {
  const raw = env.BERTH_BUILD_NICE;
  if (raw === undefined || raw === "") return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 19) {
    throw new KubernetesBuildSpecError(`BERTH_BUILD_NICE must be an integer 0–19, got "${raw}"`);
  }
  return n;
}
