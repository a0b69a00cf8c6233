/**
 * The test node's own images, with no registry: a static Go program from ./images/ built
 * with CGO_ENABLED=0, packed by `buildah from scratch` into an OCI archive, cached outside
 * the clone by a hash of its sources and the Go version
 * (`${XDG_CACHE_HOME:-~/.cache}/berth/images/<name>-<hash>.tar`).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { goExecutable } from "./build.js";
import { kubernetesCacheRoot } from "./build-config.js";
import { PAUSE_IMAGE, TESTBOX_IMAGE } from "./cluster-config.js";
import { run } from "./node-host.js";

const SOURCES = join(import.meta.dirname, "images");

/** Thrown when a test image cannot be built (no go, no buildah, a failing build). */
export class ImageBuildError extends Error {
  override readonly name = "ImageBuildError";
}

/** An image the harness builds. */
export interface ImageSpec {
  /** Directory under ./images with its main package. */
  readonly program: string;
  /** Image reference stored in the archive (what pods name). */
  readonly ref: string;
  /** Image entrypoint arguments after the binary (its default command). */
  readonly cmd: readonly string[];
}

export const PAUSE: ImageSpec = { program: "pause", ref: PAUSE_IMAGE, cmd: [] };
export const TESTBOX: ImageSpec = { program: "testbox", ref: TESTBOX_IMAGE, cmd: ["serve"] };

/** Directory of cached image archives. */
export function imageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(dirname(kubernetesCacheRoot(env, homedir())), "images");
}

/** Returns the OCI archive of `spec`, building it first unless an identical one is cached. */
export async function ensureImage(
  spec: ImageSpec,
  log: (line: string) => void = () => undefined,
): Promise<string> {
  const go = goExecutable();
  const goVersion = (await run(go, ["env", "GOVERSION"])).stdout.trim();
  if (!goVersion) throw new ImageBuildError(`"${go}" is not runnable; it builds the test images`);
  const hash = createHash("sha256");
  hash.update(`${spec.ref}\0${spec.cmd.join("\0")}\0${goVersion}\0`);
  hash.update(await readFile(join(SOURCES, "go.mod")));
  for (const f of (await readdir(join(SOURCES, spec.program))).sort()) {
    hash.update(`${f}\0`);
    hash.update(await readFile(join(SOURCES, spec.program, f)));
  }
  const cache = imageCacheDir();
  const archive = join(cache, `${spec.program}-${hash.digest("hex").slice(0, 16)}.tar`);
  if (existsSync(archive)) return archive;

  const started = Date.now();
  await mkdir(cache, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), "berth-image-"));
  const tag = `localhost/berth-image-build-${process.pid}-${Date.now()}:tmp`;
  let container: string | undefined;
  try {
    const bin = join(work, spec.program);
    const build = await run(
      go,
      ["build", "-trimpath", "-ldflags=-s -w", "-o", bin, `./${spec.program}`],
      { cwd: SOURCES, env: { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-buildvcs=false" } },
    );
    if (build.code !== 0)
      throw new ImageBuildError(`go build ./${spec.program} failed: ${build.stderr.trim()}`);
    const buildah = async (...args: string[]): Promise<string> => {
      const r = await run("buildah", args);
      if (r.code !== 0) {
        throw new ImageBuildError(
          r.code === 127
            ? "buildah is not installed (Debian: apt-get install buildah); it packs the test images"
            : `buildah ${args[0]} failed: ${r.stderr.trim()}`,
        );
      }
      return r.stdout.trim();
    };
    container = await buildah("from", "--quiet", "scratch");
    await buildah("copy", "--quiet", container, bin, `/${spec.program}`);
    await buildah(
      "config",
      "--entrypoint",
      JSON.stringify([`/${spec.program}`]),
      "--cmd",
      JSON.stringify(spec.cmd),
      "--user",
      "0:0",
      container,
    );
    await buildah("commit", "--quiet", container, tag);
    const partial = join(work, "image.tar");
    await buildah("push", "--quiet", tag, `oci-archive:${partial}:${spec.ref}`);
    await rename(partial, archive);
    log(`built image ${spec.ref} → ${archive} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    return archive;
  } finally {
    if (container) await run("buildah", ["rm", container]);
    await run("buildah", ["rmi", tag]);
    await rm(work, { recursive: true, force: true });
  }
}
