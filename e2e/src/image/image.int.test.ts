// The real Dockerfile, built with buildah on the stand-in base, and containers of it run
// with runc the way a kubelet runs them: non-root, read-only root filesystem, volumes.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cp, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { before, describe, test } from "node:test";
import { REPO_ROOT } from "./base-image.js";
import { type BuiltImage, buildBerthImage } from "./build.js";
import { dockerfileBase, parseImageUser, pinnedNodeVersion } from "./config.js";
import {
  type ContainerOptions,
  type RunningContainer,
  runContainer,
  startContainer,
} from "./container.js";
import { hasCommand, run } from "./exec.js";
import { DATA_MOUNT, isAddressInUse, prepareSingleNode, waitReady } from "./single-node.js";

const TAG = "localhost/berth:test";

async function skipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "needs root (buildah's storage, debootstrap, runc)";
  for (const command of ["buildah", "debootstrap", "runc"]) {
    if (!(await hasCommand(command)))
      return `"${command}" is not installed (apt-get install ${command})`;
  }
  return undefined;
}

const skip = await skipReason();
if (skip) console.log(`# SKIP container image tests: ${skip}`);

test("the Dockerfile builds on the Node the project pins", async () => {
  const base = dockerfileBase(await readFile(join(REPO_ROOT, "Dockerfile"), "utf8"));
  const lock = JSON.parse(await readFile(join(REPO_ROOT, "package-lock.json"), "utf8"));
  assert.equal(base.nodeVersion, pinnedNodeVersion(lock));
  assert.equal(base.name, `node:${pinnedNodeVersion(lock)}-bookworm-slim`);
});

describe("the container image", { skip, concurrency: false }, () => {
  let image: BuiltImage;
  // A cold build (debootstrap, then both npm ci stages) takes 5–7 minutes on 2 cores:
  // more than a test file's default timeout.
  before(
    async () => {
      image = await buildBerthImage({ tag: TAG });
    },
    { timeout: 30 * 60_000 },
  );

  const inImage = (options: Omit<ContainerOptions, "image">) =>
    runContainer({ image: TAG, mounts: [{ type: "tmpfs", destination: "/tmp" }], ...options });

  test("builds from the Dockerfile into an OCI archive named by its tag", async () => {
    const inspected = JSON.parse(await run("buildah", ["inspect", "--type", "image", TAG])) as {
      FromImageID: string;
      OCIv1: { config: { Labels: Record<string, string> } };
    };
    assert.equal(inspected.FromImageID, image.imageId);
    const labels = inspected.OCIv1.config.Labels;
    assert.equal(labels["org.opencontainers.image.title"], "berth");
    assert.equal(labels["org.opencontainers.image.base.name"], image.base.name);
    assert.equal((await stat(image.ociArchive)).size, image.sizeBytes);
    const index = JSON.parse(
      execFileSync("tar", ["-xOf", image.ociArchive, "index.json"], { encoding: "utf8" }),
    );
    assert.equal(index.manifests[0].annotations["org.opencontainers.image.ref.name"], TAG);
    assert.ok(image.unpackedBytes > image.sizeBytes, `${image.unpackedBytes} > ${image.sizeBytes}`);
  });

  test("runs as uid 10001 with a read-only root; only the mounted volumes are writable", async () => {
    const config = JSON.parse(await run("buildah", ["inspect", "--type", "image", TAG])).OCIv1
      .config;
    assert.deepEqual(parseImageUser(config.User), { uid: 10001, gid: 10001 });
    const script = `
      const fs = require("node:fs");
      const tryWrite = (p) => { try { fs.writeFileSync(p, "x"); return "ok"; } catch (e) { return e.code; } };
      console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), app: tryWrite("/app/x"),
        root: tryWrite("/x"), tmp: tryWrite("/tmp/x"), home: require("node:os").homedir() }));`;
    const r = await inImage({ args: ["node", "-e", script] });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      uid: 10001,
      gid: 10001,
      app: "EROFS",
      root: "EROFS",
      tmp: "ok",
      home: DATA_MOUNT,
    });
  });

  test("ships compiled JavaScript and production dependencies only", async () => {
    const script = `
      const fs = require("node:fs");
      const ts = fs.globSync("/app/{worker,gateway,operator,cli}/**/*.ts");
      console.log(JSON.stringify({ ts, dev: ["tsx", "typescript", "esbuild", "@biomejs", "node"]
        .filter((p) => fs.existsSync("/app/node_modules/" + p)),
        bundles: ["worker/dist/main.js", "gateway/dist/main.js", "operator/dist/main.js", "cli/dist/main.js"]
        .filter((p) => fs.existsSync("/app/" + p)).length }));`;
    const r = await inImage({ args: ["node", "-e", script] });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ts: [], dev: [], bundles: 4 });
  });

  test("each command on PATH answers --help, and the default command is berth --help", async () => {
    const expected: [string[] | undefined, string][] = [
      [["berth-operator", "--help"], "usage: berth-operator "],
      [["berth-worker", "--help"], "usage: worker "],
      [["berth-gateway", "--help"], "usage: gateway "],
      [["berth", "--help"], "Usage: berth <command>"],
      [undefined, "Usage: berth <command>"],
    ];
    for (const [args, start] of expected) {
      const r = await inImage(args === undefined ? {} : { args });
      assert.equal(r.code, 0, `${args?.join(" ") ?? "(default)"}: ${r.stderr}`);
      assert.ok(
        r.stdout.startsWith(start),
        `${args?.join(" ") ?? "(default)"} printed ${r.stdout.slice(0, 80)}`,
      );
    }
  });

  test("a worker and a gateway with a read-only root reach /readyz, journal into the volume, and exit 0 on SIGTERM as PID 1", async () => {
    // The chosen ports are free when chosen, not reserved: another process may bind one
    // before the container does. Only that failure is retried, with fresh ports.
    for (let attempt = 1; ; attempt++) {
      try {
        await workerAndGateway();
        return;
      } catch (e: unknown) {
        if (!isAddressInUse(e) || attempt === 3) throw e;
      }
    }
  });

  async function workerAndGateway(): Promise<void> {
    const data = await mkdtemp(join(tmpdir(), "berth-image-data-"));
    const containers: RunningContainer[] = [];
    try {
      const node = await prepareSingleNode(data, { uid: 10001, gid: 10001 });
      const lines: string[] = [];
      const common = {
        image: TAG,
        mounts: [
          { type: "tmpfs", destination: "/tmp" },
          { type: "bind", source: data, destination: DATA_MOUNT },
        ] as const,
        onLine: (line: string) => lines.push(line),
      };
      const worker = await startContainer({
        ...common,
        args: ["berth-worker", ...node.workerArgs(DATA_MOUNT)],
      });
      containers.push(worker);
      const gateway = await startContainer({
        ...common,
        args: ["berth-gateway", ...node.gatewayArgs(DATA_MOUNT)],
      });
      containers.push(gateway);
      const exitedEarly = (c: RunningContainer) => {
        let code: number | undefined;
        void c.exited.then((e) => {
          code = e.code;
        });
        return () =>
          code === undefined ? undefined : `exited with ${code}: ${lines.slice(-5).join(" | ")}`;
      };
      const since = performance.now();
      await waitReady(node.workerHttp, { since, timeoutMs: 60_000, alive: exitedEarly(worker) });
      await waitReady(node.gatewayHttp, { since, timeoutMs: 60_000, alive: exitedEarly(gateway) });
      const journal = await stat(join(data, "journal.db"));
      assert.equal(journal.uid, 10001);
      await Promise.all([worker.kill("TERM"), gateway.kill("TERM")]);
      const [w, g] = await Promise.all([worker.exited, gateway.exited]);
      assert.equal(w.code, 0, `worker: ${w.stderr}${lines.slice(-5).join("\n")}`);
      assert.equal(g.code, 0, `gateway: ${g.stderr}`);
      assert.ok(
        lines.some((l) => l.includes('"event":"worker.exited_cleanly"')),
        "the worker logged its clean exit",
      );
    } finally {
      await Promise.all(containers.map((c) => c.remove()));
      await rm(data, { recursive: true, force: true });
    }
  }

  test("a changed source file is in the next build (no stale layer)", {
    timeout: 15 * 60_000,
  }, async (t) => {
    const copy = await mkdtemp(join(tmpdir(), "berth-image-tree-"));
    const tag = "localhost/berth:test-changed";
    t.after(async () => {
      await rm(copy, { recursive: true, force: true });
      await run("buildah", ["rmi", tag]).catch(() => undefined);
    });
    const files = execFileSync("git", ["ls-files", "-co", "--exclude-standard"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    })
      .split("\n")
      .filter((f) => f !== "");
    for (const f of files) {
      await cp(join(REPO_ROOT, f), join(copy, f), { recursive: true }).catch((e: unknown) => {
        // A file deleted but not yet staged is listed by ls-files; nothing to copy.
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      });
    }
    const marker = `changed-${process.pid}-${Date.now()}`;
    const flags = join(copy, "worker/src/adapters/worker-flags.ts");
    const source = await readFile(flags, "utf8");
    const changed = source.replace("usage: worker --id", `usage: worker ${marker} --id`);
    assert.notEqual(changed, source);
    await writeFile(flags, changed);
    const rebuilt = await buildBerthImage({
      tag,
      repoRoot: copy,
      archive: join(copy, "image.oci.tar"),
    });
    assert.notEqual(rebuilt.imageId, image.imageId);
    assert.equal(dirname(rebuilt.ociArchive), copy);
    const r = await runContainer({ image: tag, args: ["berth-worker", "--help"] });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.startsWith(`usage: worker ${marker} --id`), r.stdout.slice(0, 80));
  });
});
