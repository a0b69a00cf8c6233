/**
 * Pure parts of the image harness: which base image the Dockerfile names, which Node and
 * npm the stand-in for it carries, the cache layout, and the OCI runtime spec a test
 * container runs with. No IO here; base-image.ts, build.ts and container.ts do the work.
 */
import { join } from "node:path";

/** Thrown when the Dockerfile does not pin its base image the way the harness expects. */
export class DockerfileBaseError extends Error {
  override readonly name = "DockerfileBaseError";
  constructor(message: string) {
    super(`Dockerfile: ${message}`);
  }
}

/** Thrown when the Node changelog does not say which npm a Node version ships. */
export class NpmVersionUnknownError extends Error {
  override readonly name = "NpmVersionUnknownError";
  constructor(
    /** The Node version looked up. */
    readonly nodeVersion: string,
  ) {
    super(`the Node changelog has no "upgrade npm to …" entry at or before Node ${nodeVersion}`);
  }
}

/** The base image the Dockerfile builds on, as `ARG NODE_IMAGE=node:<version>-<suite>-slim`. */
export interface BaseImageRef {
  /** As written, e.g. `node:24.21.0-bookworm-slim`. */
  readonly name: string;
  /** What buildah resolves the short name to, e.g. `docker.io/library/node:24.21.0-bookworm-slim`. */
  readonly fullName: string;
  /** e.g. `24.21.0`. */
  readonly nodeVersion: string;
  /** The Debian suite, e.g. `bookworm`. */
  readonly suite: string;
}

/** How every stage names its base: the ARG, so one line pins it. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own ${} syntax
const BASE_REFERENCE = "${NODE_IMAGE}";
const BASE_ARG = /^ARG\s+NODE_IMAGE=(\S+)\s*$/m;
const NODE_TAG = /^node:(\d+\.\d+\.\d+)-([a-z]+)-slim$/;

/** Reads the `ARG NODE_IMAGE=node:X.Y.Z-<suite>-slim` line every stage's FROM uses. */
export function dockerfileBase(dockerfile: string): BaseImageRef {
  const arg = BASE_ARG.exec(dockerfile);
  if (arg === null) throw new DockerfileBaseError("no `ARG NODE_IMAGE=node:X.Y.Z-<suite>-slim`");
  const name = arg[1] as string;
  const tag = NODE_TAG.exec(name);
  if (tag === null) {
    throw new DockerfileBaseError(
      `NODE_IMAGE is "${name}"; expected node:X.Y.Z-<debian suite>-slim (an exact version)`,
    );
  }
  // Every stage builds on the pinned base, directly or through an earlier stage.
  const stages = new Set<string>();
  let count = 0;
  for (const m of dockerfile.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)) {
    const from = m[1] as string;
    if (from !== BASE_REFERENCE && !stages.has(from.toLowerCase())) {
      throw new DockerfileBaseError(
        `every stage must be FROM \${NODE_IMAGE} or an earlier stage (found FROM ${from})`,
      );
    }
    if (m[2] !== undefined) stages.add(m[2].toLowerCase());
    count++;
  }
  if (count === 0) throw new DockerfileBaseError("no FROM");
  return {
    name,
    fullName: `docker.io/library/${name}`,
    nodeVersion: tag[1] as string,
    suite: tag[2] as string,
  };
}

/** The `node` devDependency's version in package-lock.json (the Node the project pins). */
export function pinnedNodeVersion(packageLock: {
  readonly packages?: Readonly<Record<string, { readonly version?: string }>>;
}): string {
  const version = packageLock.packages?.["node_modules/node"]?.version;
  if (version === undefined) throw new Error('package-lock.json has no "node_modules/node"');
  return version;
}

/**
 * The npm a Node release ships, from Node's CHANGELOG (newest release first): the first
 * "upgrade npm to X" at or below the release's own "Version <v>" heading.
 */
export function npmVersionOfNode(changelog: string, nodeVersion: string): string {
  const heading = changelog.search(
    new RegExp(`^## .*Version ${nodeVersion.replaceAll(".", "\\.")}\\b`, "m"),
  );
  if (heading < 0) throw new NpmVersionUnknownError(nodeVersion);
  const upgrade = /\*\*deps\*\*: upgrade npm to (\d+\.\d+\.\d+)/.exec(changelog.slice(heading));
  if (upgrade === null) throw new NpmVersionUnknownError(nodeVersion);
  return upgrade[1] as string;
}

/**
 * Bumped when the way the stand-in is assembled changes, so a cached one is rebuilt.
 * Part of the cache key and of the image's label.
 */
export const STAND_IN_RECIPE = 1;

/** Label on the stand-in base image: its cache key. */
export const STAND_IN_LABEL = "dev.berth.image.stand-in";

/** The stand-in's cache key: suite, Node, npm and recipe, e.g. `bookworm-node24.21.0-npm11.19.0-r1`. */
export function standInKey(base: BaseImageRef, npmVersion: string): string {
  return `${base.suite}-node${base.nodeVersion}-npm${npmVersion}-r${STAND_IN_RECIPE}`;
}

/** `$BERTH_IMAGE_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/berth/images`. */
export function imageCacheRoot(env: NodeJS.ProcessEnv, home: string): string {
  if (env.BERTH_IMAGE_CACHE) return env.BERTH_IMAGE_CACHE;
  return join(env.XDG_CACHE_HOME || join(home, ".cache"), "berth", "images");
}

/** Where one stand-in lives under the cache root. */
export interface StandInLayout {
  readonly root: string;
  /** The assembled root filesystem (Debian + Node + npm). */
  readonly rootfs: string;
  /** Written last: the rootfs is complete. */
  readonly stamp: string;
  readonly lock: string;
}

/** The layout of the stand-in with this key. */
export function standInLayout(cacheRoot: string, key: string): StandInLayout {
  const root = join(cacheRoot, key);
  return {
    root,
    rootfs: join(root, "rootfs"),
    stamp: join(root, "stamp.json"),
    lock: join(cacheRoot, `${key}.lock`),
  };
}

/** The Debian mirror debootstrap uses; `$BERTH_DEBIAN_MIRROR` overrides. */
export function debianMirror(env: NodeJS.ProcessEnv): string {
  return env.BERTH_DEBIAN_MIRROR || "http://deb.debian.org/debian";
}

/** The image config the stand-in gets: what the official node image sets that matters here. */
export function standInConfigArgs(base: BaseImageRef, key: string): string[] {
  return [
    "--env",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--env",
    `NODE_VERSION=${base.nodeVersion}`,
    "--cmd",
    '["node"]',
    "--label",
    `${STAND_IN_LABEL}=${key}`,
  ];
}

/** The parts of an image's OCI config a container is started from. */
export interface ImageConfig {
  readonly User?: string;
  readonly Env?: readonly string[];
  readonly WorkingDir?: string;
  readonly Entrypoint?: readonly string[] | null;
  readonly Cmd?: readonly string[] | null;
  readonly Labels?: Readonly<Record<string, string>> | null;
}

/** Thrown when an image's User is not numeric `uid[:gid]` (a name needs the image's passwd). */
export class NonNumericUserError extends Error {
  override readonly name = "NonNumericUserError";
  constructor(readonly user: string) {
    super(`image user "${user}" is not numeric uid[:gid]; Kubernetes' runAsNonRoot needs a uid`);
  }
}

/** `uid[:gid]` → numbers; an empty User is root (0:0). */
export function parseImageUser(user: string | undefined): { uid: number; gid: number } {
  if (user === undefined || user === "") return { uid: 0, gid: 0 };
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  if (m === null) throw new NonNumericUserError(user);
  const uid = Number(m[1]);
  return { uid, gid: m[2] === undefined ? uid : Number(m[2]) };
}

/** A mount added to a test container. */
export type ContainerMount =
  | { readonly type: "tmpfs"; readonly destination: string }
  | { readonly type: "bind"; readonly source: string; readonly destination: string };

/** What {@link runtimeSpec} builds a container from. */
export interface RuntimeSpecInput {
  readonly image: ImageConfig;
  /** The merged root filesystem (buildah mount). */
  readonly rootfs: string;
  /** Replaces the image's Cmd (Entrypoint is kept, as Kubernetes `args` do). */
  readonly args?: readonly string[];
  /** Added to (and overriding) the image's Env. */
  readonly env?: Readonly<Record<string, string>>;
  readonly mounts?: readonly ContainerMount[];
  /** Mount the root filesystem read-only (Kubernetes' readOnlyRootFilesystem). */
  readonly readOnlyRoot: boolean;
  /** cgroup path (runc creates and removes it). */
  readonly cgroupsPath: string;
  readonly hostname: string;
}

/**
 * The OCI runtime spec (config.json) for runc, the way a kubelet would run the image:
 * the image's user, env, working dir and command; own pid/ipc/uts/mount namespaces but the
 * host's network (tests reach it on 127.0.0.1); no capabilities and no new privileges,
 * like a pod with `capabilities.drop: [ALL]` and `allowPrivilegeEscalation: false`.
 */
export function runtimeSpec(input: RuntimeSpecInput): object {
  const { uid, gid } = parseImageUser(input.image.User);
  const env = new Map<string, string>();
  for (const kv of input.image.Env ?? []) {
    const i = kv.indexOf("=");
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const [k, v] of Object.entries(input.env ?? {})) env.set(k, v);
  const args = [...(input.image.Entrypoint ?? []), ...(input.args ?? input.image.Cmd ?? [])];
  if (args.length === 0) throw new Error("the container has no command: give args");
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid, gid },
      args,
      env: [...env].map(([k, v]) => `${k}=${v}`),
      cwd: input.image.WorkingDir || "/",
      capabilities: { bounding: [], effective: [], permitted: [], ambient: [] },
      noNewPrivileges: true,
    },
    root: { path: input.rootfs, readonly: input.readOnlyRoot },
    hostname: input.hostname,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
      {
        destination: "/dev/pts",
        type: "devpts",
        source: "devpts",
        options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
      },
      {
        destination: "/dev/shm",
        type: "tmpfs",
        source: "shm",
        options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
      },
      {
        destination: "/dev/mqueue",
        type: "mqueue",
        source: "mqueue",
        options: ["nosuid", "noexec", "nodev"],
      },
      {
        destination: "/sys",
        type: "sysfs",
        source: "sysfs",
        options: ["nosuid", "noexec", "nodev", "ro"],
      },
      // The host's resolver files, read-only (as a kubelet bind-mounts its own).
      { destination: "/etc/hosts", type: "bind", source: "/etc/hosts", options: ["rbind", "ro"] },
      ...(input.mounts ?? []).map((m) =>
        m.type === "tmpfs"
          ? {
              destination: m.destination,
              type: "tmpfs",
              source: "tmpfs",
              options: ["nosuid", "nodev", "mode=1777", "size=65536k"],
            }
          : {
              destination: m.destination,
              type: "bind",
              source: m.source,
              options: ["rbind", "rw"],
            },
      ),
    ],
    linux: {
      cgroupsPath: input.cgroupsPath,
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      maskedPaths: [
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
      ],
      readonlyPaths: [
        "/proc/asound",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
      ],
    },
  };
}
