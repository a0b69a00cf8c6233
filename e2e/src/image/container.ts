/**
 * Runs a container of an image in buildah's storage the way a kubelet would — the image's
 * user, env, working dir and command, a read-only root filesystem, writable volumes only
 * where mounted — with runc directly (podman is not installed; `buildah run` cannot make
 * the root read-only). The host's network namespace is shared: tests reach it on 127.0.0.1.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ContainerMount, type ImageConfig, runtimeSpec } from "./config.js";
import { run } from "./exec.js";

/** Options of {@link startContainer}. */
export interface ContainerOptions {
  /** Image name or id in buildah's storage. */
  readonly image: string;
  /** The command (replaces the image's Cmd, like Kubernetes `args`). */
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly mounts?: readonly ContainerMount[];
  /** Default true (Kubernetes' readOnlyRootFilesystem). */
  readonly readOnlyRoot?: boolean;
  /** Each line the container prints. */
  readonly onLine?: (line: string, stream: "stdout" | "stderr") => void;
}

/** How a container ended. */
export interface ContainerExit {
  /** runc's exit code: the process's, or 128+signal. */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A started container; {@link RunningContainer.remove} always cleans up. */
export interface RunningContainer {
  readonly id: string;
  /** The image's OCI config. */
  readonly config: ImageConfig;
  /** performance.now() when `runc run` was spawned (after the working container was made). */
  readonly startedAt: number;
  /** Resolves when the container's process has exited. */
  readonly exited: Promise<ContainerExit>;
  /** Sends a signal to the container's process (default SIGTERM). */
  kill(signal?: string): Promise<void>;
  /** Kills (if still running) and deletes the container, its working container and bundle. */
  remove(): Promise<void>;
}

let counter = 0;

/** The OCI config of an image in buildah's storage. */
export async function imageConfig(image: string): Promise<ImageConfig> {
  const info = JSON.parse(await run("buildah", ["inspect", "--type", "image", image])) as {
    OCIv1: { config?: ImageConfig };
  };
  return info.OCIv1.config ?? {};
}

/** Starts a container (see the module doc). */
export async function startContainer(options: ContainerOptions): Promise<RunningContainer> {
  const id = `berth-image-test-${process.pid}-${++counter}`;
  const config = await imageConfig(options.image);
  const working = (
    await run("buildah", ["from", "--pull=never", "--name", id, options.image])
  ).trim();
  let bundle: string | undefined;
  let child: ChildProcess | undefined;
  const cleanup = async () => {
    if (child !== undefined) {
      await run("runc", ["delete", "--force", id]).catch(() => undefined);
    }
    if (bundle !== undefined) await rm(bundle, { recursive: true, force: true });
    await run("buildah", ["rm", working]).catch(() => undefined);
  };
  try {
    const rootfs = (await run("buildah", ["mount", working])).trim();
    bundle = await mkdtemp(join(tmpdir(), "berth-bundle-"));
    const spec = runtimeSpec({
      image: config,
      rootfs,
      ...(options.args === undefined ? {} : { args: options.args }),
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.mounts === undefined ? {} : { mounts: options.mounts }),
      readOnlyRoot: options.readOnlyRoot ?? true,
      cgroupsPath: `/berth-image-test/${id}`,
      hostname: id,
    });
    await writeFile(join(bundle, "config.json"), JSON.stringify(spec, null, 2));
    const startedAt = performance.now();
    const started = spawn("runc", ["run", "--bundle", bundle, id], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = started;
    let stdout = "";
    let stderr = "";
    const relay = (stream: NodeJS.ReadableStream, name: "stdout" | "stderr") => {
      let partial = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        if (name === "stdout") stdout += chunk;
        else stderr += chunk;
        const parts = (partial + chunk).split("\n");
        partial = parts.pop() ?? "";
        for (const line of parts) options.onLine?.(line, name);
      });
    };
    relay(started.stdout, "stdout");
    relay(started.stderr, "stderr");
    const exited = new Promise<ContainerExit>((resolve, reject) => {
      started.once("error", reject);
      started.once("close", (code, signal) =>
        resolve({ code: code ?? 128 + (signal === null ? 0 : 15), stdout, stderr }),
      );
    });
    let removed: Promise<void> | undefined;
    return {
      id,
      config,
      startedAt,
      exited,
      kill: async (signal = "TERM") => {
        await run("runc", ["kill", id, signal.replace(/^SIG/, "")]);
      },
      remove: () => {
        removed ??= (async () => {
          if (started.exitCode === null && started.signalCode === null) {
            await run("runc", ["kill", id, "KILL"]).catch(() => undefined);
            await exited.catch(() => undefined);
          }
          await cleanup();
        })();
        return removed;
      },
    };
  } catch (e: unknown) {
    await cleanup();
    throw e;
  }
}

/** Runs a container to completion and removes it. */
export async function runContainer(options: ContainerOptions): Promise<ContainerExit> {
  const container = await startContainer(options);
  try {
    return await container.exited;
  } finally {
    await container.remove();
  }
}
