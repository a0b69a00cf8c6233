/**
 * The stand-in for the Dockerfile's base image (`node:<version>-<suite>-slim`), assembled
 * here because no registry can be reached: a Debian rootfs from `debootstrap
 * --variant=minbase`, the Node binary the project pins (node_modules/node) and the npm that
 * Node release ships (from the npm registry, with npm's own client). The rootfs is cached
 * outside the clone, keyed by suite + Node + npm, under a lock; the image is committed to
 * buildah's storage under the base's own name, so `buildah bud` builds the real Dockerfile.
 */
import { existsSync } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { withFileLock } from "@berth/testing/kubernetes";
import {
  type BaseImageRef,
  debianMirror,
  dockerfileBase,
  imageCacheRoot,
  npmVersionOfNode,
  pinnedNodeVersion,
  STAND_IN_LABEL,
  type StandInLayout,
  standInConfigArgs,
  standInKey,
  standInLayout,
} from "./config.js";
import { run } from "./exec.js";

/** The repository root (this file is e2e/src/image/base-image.ts). */
export const REPO_ROOT: string = new URL("../../../", import.meta.url).pathname;

/** Thrown when the Dockerfile's Node is not the Node package-lock.json pins. */
export class BaseVersionMismatchError extends Error {
  override readonly name = "BaseVersionMismatchError";
  constructor(
    readonly dockerfileNode: string,
    readonly pinnedNode: string,
  ) {
    super(
      `the Dockerfile's NODE_IMAGE has Node ${dockerfileNode} but package-lock.json pins node ${pinnedNode}; make them equal`,
    );
  }
}

/** Options of {@link ensureBaseImage}. */
export interface BaseImageOptions {
  /** The tree whose Dockerfile and package-lock.json name the base; default this clone. */
  readonly repoRoot?: string;
  /** Default {@link imageCacheRoot}. */
  readonly cacheRoot?: string;
  /** Progress lines; default stderr with an `[image] ` prefix. */
  readonly log?: (line: string) => void;
}

/** What {@link ensureBaseImage} found or made. */
export interface BaseImage extends BaseImageRef {
  /** buildah's image id. */
  readonly imageId: string;
  /** The stand-in's cache key; undefined when a real image of that name was already there. */
  readonly key: string | undefined;
  /** What this call did: nothing, commit the cached rootfs, or assemble it first. */
  readonly action: "cached" | "committed" | "assembled";
  readonly seconds: number;
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[image] ${line}\n`);
};

/** Labels of an image in buildah's storage, or undefined when there is no such image. */
export async function imageLabels(
  name: string,
): Promise<{ id: string; labels: Record<string, string> } | undefined> {
  let out: string;
  try {
    out = await run("buildah", ["inspect", "--type", "image", name]);
  } catch {
    return undefined;
  }
  const info = JSON.parse(out) as {
    FromImageID: string;
    OCIv1: { config?: { Labels?: Record<string, string> | null } };
  };
  return { id: info.FromImageID, labels: info.OCIv1.config?.Labels ?? {} };
}

/**
 * Makes sure buildah's storage holds the Dockerfile's base image: the stand-in for the
 * current Dockerfile + pinned Node, or a real image of that name if one was pulled.
 */
export async function ensureBaseImage(options: BaseImageOptions = {}): Promise<BaseImage> {
  const started = performance.now();
  const repoRoot = options.repoRoot ?? REPO_ROOT;
  const log = options.log ?? defaultLog;
  const base = dockerfileBase(await readFile(join(repoRoot, "Dockerfile"), "utf8"));
  const pinned = pinnedNodeVersion(
    JSON.parse(await readFile(join(repoRoot, "package-lock.json"), "utf8")),
  );
  if (pinned !== base.nodeVersion) throw new BaseVersionMismatchError(base.nodeVersion, pinned);
  // The Node binary comes from this clone's install (the `node` devDependency), whichever
  // tree is being built; its version is checked against the Dockerfile's when assembling.
  const nodePackage = join(
    REPO_ROOT,
    "node_modules",
    "node",
    "node_modules",
    `node-linux-${process.arch}`,
  );
  const changelog = await readFile(join(nodePackage, "CHANGELOG.md"), "utf8").catch(
    (e: unknown) => {
      // Older installs of the `node` package moved the binary into node/bin and dropped
      // the release's files: the npm version it ships is then unknown here.
      throw new Error(
        `cannot read ${join(nodePackage, "CHANGELOG.md")} (${(e as Error).message}): the stand-in ` +
          "base takes the Node binary and its npm version from the `node` devDependency's " +
          "platform package; reinstall it with `npm ci`",
      );
    },
  );
  const npmVersion = npmVersionOfNode(changelog, pinned);
  const key = standInKey(base, npmVersion);
  const layout = standInLayout(options.cacheRoot ?? imageCacheRoot(process.env, homedir()), key);
  await mkdir(layout.root, { recursive: true });
  const seconds = () => Math.round((performance.now() - started) / 100) / 10;

  return withFileLock(
    layout.lock,
    async () => {
      const existing = await imageLabels(base.fullName);
      if (existing !== undefined) {
        const label = existing.labels[STAND_IN_LABEL];
        if (label === undefined) {
          log(`base ${base.name}: using the image already in buildah's storage (not a stand-in)`);
          return {
            ...base,
            imageId: existing.id,
            key: undefined,
            action: "cached",
            seconds: seconds(),
          };
        }
        if (label === key) {
          return { ...base, imageId: existing.id, key, action: "cached", seconds: seconds() };
        }
        log(`base ${base.name}: replacing the stand-in ${label} with ${key}`);
      }
      let action: BaseImage["action"] = "committed";
      if (!existsSync(layout.stamp)) {
        action = "assembled";
        await assembleRootfs(layout, base, {
          node: join(nodePackage, "bin", "node"),
          nodeVersion: pinned,
          npmVersion,
          mirror: debianMirror(process.env),
          log,
        });
      }
      log(`base ${base.name}: committing ${layout.rootfs} to buildah's storage`);
      const imageId = await commitRootfs(layout.rootfs, base, key);
      if (existing !== undefined && existing.id !== imageId) {
        await run("buildah", ["rmi", existing.id]).catch((e: unknown) =>
          log(`base: could not remove the previous stand-in ${existing.id}: ${String(e)}`),
        );
      }
      log(`base ${base.name}: ready (${key}, ${action}) in ${seconds()} s`);
      return { ...base, imageId, key, action, seconds: seconds() };
    },
    {
      onWait: (holder, waitedMs) =>
        log(
          `waiting for process ${holder}, which is making ${key} (${Math.round(waitedMs / 1000)} s)`,
        ),
    },
  );
}

interface AssembleInput {
  readonly node: string;
  readonly nodeVersion: string;
  readonly npmVersion: string;
  readonly mirror: string;
  readonly log: (line: string) => void;
}

/** debootstrap + Node + npm into a temporary directory, renamed to layout.rootfs when complete. */
async function assembleRootfs(
  layout: StandInLayout,
  base: BaseImageRef,
  input: AssembleInput,
): Promise<void> {
  const { log } = input;
  const work = await mkdtemp(join(layout.root, "work-"));
  const rootfs = join(work, "rootfs");
  try {
    const nodeSays = (await run(input.node, ["--version"])).trim();
    if (nodeSays !== `v${input.nodeVersion}`) {
      throw new Error(
        `${input.node} says ${nodeSays}, expected v${input.nodeVersion} (run npm ci)`,
      );
    }
    log(
      `base: debootstrap --variant=minbase ${base.suite} from ${input.mirror} (a few minutes, once)`,
    );
    const t0 = performance.now();
    let last = "";
    let packages = 0;
    const ticker = setInterval(
      () =>
        log(
          `base: debootstrap ${Math.round((performance.now() - t0) / 1000)} s, ${packages} package steps; ${last}`,
        ),
      15_000,
    );
    try {
      await run("debootstrap", ["--variant=minbase", base.suite, rootfs, input.mirror], {
        onLine: (line) => {
          last = line;
          if (/^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) \S+/.test(line))
            packages++;
          else if (line.startsWith("I: ") || line.startsWith("W: ") || line.startsWith("E: "))
            log(`base: ${line}`);
        },
      });
    } finally {
      clearInterval(ticker);
    }
    log(`base: debootstrap done in ${Math.round((performance.now() - t0) / 1000)} s`);
    // What a slim image leaves out: package caches and lists, documentation.
    for (const dir of [
      "var/cache/apt/archives",
      "var/lib/apt/lists",
      "usr/share/doc",
      "usr/share/man",
      "usr/share/info",
    ]) {
      await run("find", [
        join(rootfs, dir),
        "-mindepth",
        "1",
        "-not",
        "-name",
        "lock",
        "-not",
        "-name",
        "partial",
        "-delete",
      ]);
    }
    log(`base: adding Node ${input.nodeVersion} (${input.node}) and npm ${input.npmVersion}`);
    await copyFile(input.node, join(rootfs, "usr/local/bin/node"));
    await chmod(join(rootfs, "usr/local/bin/node"), 0o755);
    const npmDir = join(rootfs, "usr/local/lib/node_modules/npm");
    await mkdir(npmDir, { recursive: true });
    // npm's own client fetches (and verifies) the tarball: `npm pack npm@X`.
    const packed = (
      await run(
        process.execPath,
        [npmCli(), "pack", `npm@${input.npmVersion}`, "--pack-destination", work, "--silent"],
        {
          cwd: work,
        },
      )
    )
      .trim()
      .split("\n")
      .pop() as string;
    await run("tar", [
      "-xzf",
      join(work, packed),
      "-C",
      npmDir,
      "--strip-components=1",
      "--no-same-owner",
    ]);
    await symlink("../lib/node_modules/npm/bin/npm-cli.js", join(rootfs, "usr/local/bin/npm"));
    await symlink("../lib/node_modules/npm/bin/npx-cli.js", join(rootfs, "usr/local/bin/npx"));
    await writeFile(
      layout.stamp.replace(layout.root, work),
      `${JSON.stringify({ base: base.name, nodeVersion: input.nodeVersion, npmVersion: input.npmVersion, mirror: input.mirror, createdAt: new Date().toISOString() }, null, 2)}\n`,
    );
    await rm(layout.rootfs, { recursive: true, force: true });
    await rename(rootfs, layout.rootfs);
    await rename(join(work, "stamp.json"), layout.stamp);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The npm CLI to run with this Node: the one running us (npm_execpath), else the one on PATH. */
function npmCli(): string {
  const fromEnv = process.env.npm_execpath;
  if (fromEnv?.endsWith("npm-cli.js")) return fromEnv;
  for (const dir of (process.env.PATH ?? "").split(":")) {
    const candidate = join(dir, "..", "lib", "node_modules", "npm", "bin", "npm-cli.js");
    if (dir !== "" && existsSync(candidate)) return candidate;
  }
  throw new Error("cannot find npm-cli.js (run through npm, or put npm on PATH)");
}

/** A scratch container with the rootfs copied in (ownership kept), committed as the base. */
async function commitRootfs(rootfs: string, base: BaseImageRef, key: string): Promise<string> {
  const container = (
    await run("buildah", ["from", "--name", `berth-base-${process.pid}`, "scratch"])
  ).trim();
  try {
    const mount = (await run("buildah", ["mount", container])).trim();
    try {
      await run("cp", ["-a", `${rootfs}/.`, `${mount}/`]);
    } finally {
      await run("buildah", ["umount", container]);
    }
    await run("buildah", ["config", ...standInConfigArgs(base, key), container]);
    const id = (await run("buildah", ["commit", "--quiet", container, base.fullName])).trim();
    return id;
  } finally {
    await run("buildah", ["rm", container]).catch(() => undefined);
  }
}
