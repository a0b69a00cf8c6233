// The worker process with --internal-tls-dir: its gRPC port speaks mutual TLS only, and
// a directory it cannot use stops it at start with exit code 2 and the reason.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadInternalTls, plaintextTransport, writeShardMapFile } from "@berth/common";
import { createCertificateAuthority, writeInternalTlsDir } from "@berth/common/testing";
import { planShardMap } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

const mainScript = fileURLToPath(new URL("./main.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const Health = grpc.makeGenericClientConstructor(healthService, "Health");
const dir = mkdtempSync(join(tmpdir(), "berth-worker-tls-"));
let tlsDir: string;

before(async () => {
  const ca = await createCertificateAuthority(join(dir, "pki"));
  tlsDir = await writeInternalTlsDir(ca, join(dir, "tls"), {
    sans: ["DNS:berth-worker.berth.svc"],
  });
});

after(() => rmSync(dir, { recursive: true, force: true }));

function runWorker(args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", mainScript, ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const listening = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.includes('"worker listening"')) resolve(line);
    });
    void exited.then((code) => reject(new Error(`worker exited with ${code}:\n${stderr}`)));
  });
  listening.catch(() => undefined);
  return { child, exited, listening, stderr: () => stderr };
}

function check(address: string, credentials: grpc.ChannelCredentials, options = {}) {
  const client = new Health(address, credentials, options);
  return new Promise<string>((resolve, reject) =>
    (client as unknown as Record<string, (...a: unknown[]) => void>).check?.(
      { service: "berth.internal.v1.GossipService" },
      { deadline: Date.now() + 10_000 },
      (e: Error | null, r: { status: string }) => {
        client.close();
        if (e) reject(e);
        else resolve(r.status);
      },
    ),
  );
}

describe("the worker process with --internal-tls-dir", () => {
  test("serves mutual TLS: a client with a certificate of the CA is answered, a plaintext one is not", async () => {
    const mapFile = join(dir, "map.json");
    const w = runWorker([
      ...["--id", "worker-0", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"],
      ...["--journal", `sqlite://${join(dir, "j.db")}`, "--shard-map-file", mapFile],
      ...["--internal-tls-dir", tlsDir, "--internal-tls-server-name", "berth-worker.berth.svc"],
    ]);
    try {
      await writeShardMapFile(
        mapFile,
        planShardMap({
          members: [{ id: "worker-0", address: "127.0.0.1:1" }],
          shardCount: 4,
          quorum: 1,
        }),
      );
      const line = JSON.parse(await w.listening) as { grpc: string };
      const client = loadInternalTls({ dir: tlsDir, serverName: "berth-worker.berth.svc" });
      try {
        assert.equal(
          await check(line.grpc, client.channelCredentials, client.channelOptions),
          "SERVING",
        );
      } finally {
        client.close();
      }
      await assert.rejects(
        check(line.grpc, plaintextTransport().channelCredentials),
        (e: unknown) => (e as grpc.ServiceError).code === grpc.status.UNAVAILABLE,
      );
    } finally {
      w.child.kill("SIGTERM");
      assert.equal(await w.exited, 0, w.stderr());
    }
  });

  test("a directory without the files stops it at start: exit 2, naming the file", async () => {
    const w = runWorker([
      ...["--id", "worker-0", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"],
      ...["--journal", `sqlite://${join(dir, "j2.db")}`, "--shard-map-file", join(dir, "m2.json")],
      ...["--internal-tls-dir", join(dir, "nowhere")],
    ]);
    assert.equal(await w.exited, 2);
    assert.equal(
      w.stderr(),
      `worker: --internal-tls-dir: cannot read ${join(dir, "nowhere", "ca.crt")}: ENOENT\n`,
    );
  });
});
