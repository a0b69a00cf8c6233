/**
 * Builds Berth's image from this tree's Dockerfile with `buildah bud` (layer cache on, so an
 * unchanged tree rebuilds in seconds; a changed file invalidates the layers from its COPY
 * on, so the image is always the current tree's), on the stand-in base, and writes it to
 * an OCI archive (`ctr -n k8s.io images import` takes it).
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { type BaseImage, ensureBaseImage, REPO_ROOT } from "./base-image.js";
import { imageCacheRoot } from "./config.js";
import { run } from "./exec.js";

/** The tag tests and `npm run image -- build` use unless told otherwise. */
export const DEFAULT_TAG = "localhost/berth:dev";

/** Options of {@link buildBerthImage}. */
export interface BuildImageOptions {
  /** Default {@link DEFAULT_TAG}. */
  readonly tag?: string;
  /** The OCI archive to write; default `<image cache>/archives/<tag>.oci.tar`. */
  readonly archive?: string;
  /** Default the clone this file is in. */
  readonly repoRoot?: string;
  /** Default {@link imageCacheRoot}. */
  readonly cacheRoot?: string;
  /** Progress lines; default stderr with an `[image] ` prefix. */
  readonly log?: (line: string) => void;
}

/** The image {@link buildBerthImage} built. */
export interface BuiltImage {
  readonly tag: string;
  /** buildah's image id (sha256 hex of its config). */
  readonly imageId: string;
  /** The OCI archive (a tar), named `tag` inside. */
  readonly ociArchive: string;
  /** The archive's size: the compressed layers plus manifests. */
  readonly sizeBytes: number;
  /** The image's unpacked size in buildah's storage. */
  readonly unpackedBytes: number;
  readonly base: BaseImage;
  /** Dockerfile steps run this time vs. taken from the layer cache. */
  readonly steps: { readonly run: number; readonly cached: number };
  readonly seconds: { readonly base: number; readonly build: number; readonly archive: number };
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[image] ${line}\n`);
};

/** `localhost/berth:dev` → `localhost_berth_dev` (a file name). */
export function tagFileName(tag: string): string {
  return tag.replace(/[^A-Za-z0-9.-]+/g, "_");
}

/** Builds the image (base first) and writes its OCI archive; see the module doc. */
export async function buildBerthImage(options: BuildImageOptions = {}): Promise<BuiltImage> {
  const log = options.log ?? defaultLog;
  const repoRoot = options.repoRoot ?? REPO_ROOT;
  const tag = options.tag ?? DEFAULT_TAG;
  const cacheRoot = options.cacheRoot ?? imageCacheRoot(process.env, homedir());
  const base = await ensureBaseImage({ repoRoot, cacheRoot, log });

  const t0 = performance.now();
  const version = (
    JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { version: string }
  ).version;
  const scratch = await mkdtemp(join(tmpdir(), "berth-image-"));
  const steps = { run: 0, cached: 0 };
  let imageId: string;
  try {
    const iidfile = join(scratch, "iid");
    const trust = await buildTrust(scratch);
    if (trust.length > 0)
      log(`build: RUN steps trust the host's extra CAs (${buildCaFile(process.env)})`);
    log(`build ${tag}: buildah bud on ${join(repoRoot, "Dockerfile")}`);
    await run(
      "buildah",
      [
        "bud",
        "--layers",
        "--pull=never",
        // RUN steps (npm ci) reach the npm registry through the host's network.
        "--network",
        "host",
        ...trust,
        "--build-arg",
        `VERSION=${version}`,
        "--iidfile",
        iidfile,
        "--tag",
        tag,
        "--file",
        join(repoRoot, "Dockerfile"),
        repoRoot,
      ],
      {
        // Every step but a FROM makes a layer: either run, or "--> Using cache <id>".
        onLine: (line) => {
          if (/^(\[\d+\/\d+\] )?STEP \d+\/\d+: /.test(line)) {
            if (!/STEP \d+\/\d+: FROM /.test(line)) steps.run++;
            log(`build: ${line}`);
          } else if (line.startsWith("--> Using cache ")) {
            steps.cached++;
          } else if (
            /^(npm (warn|error)|build: |added \d+ packages)/.test(line) ||
            /error/i.test(line)
          ) {
            log(`build:   ${line}`);
          }
        },
      },
    );
    steps.run -= steps.cached;
    imageId = (await readFile(iidfile, "utf8")).trim().replace(/^sha256:/, "");
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const buildSeconds = (performance.now() - t0) / 1000;
  log(
    `build ${tag}: image ${imageId.slice(0, 12)} in ${buildSeconds.toFixed(1)} s (${steps.run} steps run, ${steps.cached} from cache)`,
  );

  const t1 = performance.now();
  const ociArchive = options.archive ?? join(cacheRoot, "archives", `${tagFileName(tag)}.oci.tar`);
  const idFile = `${ociArchive}.image-id`;
  const archived =
    existsSync(ociArchive) && (await readFile(idFile, "utf8").catch(() => "")).trim() === imageId;
  if (!archived) {
    await mkdir(join(ociArchive, ".."), { recursive: true });
    const temp = `${ociArchive}.${process.pid}.tmp`;
    await rm(temp, { force: true });
    log(`build ${tag}: writing ${ociArchive}`);
    await run("buildah", ["push", "--quiet", imageId, `oci-archive:${temp}:${tag}`]);
    await rename(temp, ociArchive);
    await writeFile(idFile, `${imageId}\n`);
  }
  const sizeBytes = (await stat(ociArchive)).size;
  const unpackedBytes = await unpackedSize(imageId);
  return {
    tag,
    imageId,
    ociArchive,
    sizeBytes,
    unpackedBytes,
    base,
    steps,
    seconds: {
      base: base.seconds,
      build: round1(buildSeconds),
      archive: round1((performance.now() - t1) / 1000),
    },
  };
}

/**
 * The CA file the host trusts beyond Node's own (`$BERTH_IMAGE_CA_FILE`, else
 * `$NODE_EXTRA_CA_CERTS`): on a machine whose registry traffic passes an intercepting proxy,
 * `npm ci` in a RUN step needs it too. Undefined when the host has none.
 */
export function buildCaFile(env: NodeJS.ProcessEnv): string | undefined {
  return env.BERTH_IMAGE_CA_FILE || env.NODE_EXTRA_CA_CERTS || undefined;
}

/**
 * `buildah bud` flags that give RUN steps the host's extra CAs, through volumes (never
 * committed into a layer): the CA file, and a root .npmrc naming it.
 */
async function buildTrust(scratch: string): Promise<string[]> {
  const ca = buildCaFile(process.env);
  if (ca === undefined) return [];
  const npmrc = join(scratch, "npmrc");
  await writeFile(npmrc, "cafile=/etc/berth-build-ca.crt\n");
  return ["--volume", `${ca}:/etc/berth-build-ca.crt:ro`, "--volume", `${npmrc}:/root/.npmrc:ro`];
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** The image's unpacked size: its layers' uncompressed sizes (buildah's local manifest). */
async function unpackedSize(imageId: string): Promise<number> {
  const info = JSON.parse(await run("buildah", ["inspect", "--type", "image", imageId])) as {
    Manifest: string;
  };
  const manifest = JSON.parse(info.Manifest) as { layers: { size: number }[] };
  return manifest.layers.reduce((sum, l) => sum + l.size, 0);
}
