// Process start times, TypeScript through tsx vs the bundles of `npm run build`:
//   node_modules/.bin/node --import tsx bench/src/start-time.ts [--runs 10]
// Measures, interleaving the two variants run by run (a busy machine slows both alike):
// `berth --help`, one real `berth pool` call, and worker and gateway from spawn to their
// "listening" log line (its `event`; a worker with a SQLite journal and 8 shards). Prints min / median
// / max in ms. Run `npm run build` first.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { WorkerServiceClient, writeShardMapFile } from "@berth/common";
import { planShardMap } from "@berth/proto";
import { freePorts } from "@berth/testing/cassandra";
import { credentials, Metadata } from "@grpc/grpc-js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const { values } = parseArgs({ options: { runs: { type: "string", default: "10" } } });
const runs = Number(values.runs);
const env = { ...process.env, NODE_OPTIONS: "", BERTH_LOG_LEVEL: "info" };
const variants = {
  tsx: (entry: string) => ["--import", "tsx", join(root, entry)],
  compiled: (entry: string) => [
    join(root, entry.replace("/src/", "/dist/").replace(/\.ts$/, ".js")),
  ],
} as const;
type Variant = keyof typeof variants;

/** Spawns node with `args` and resolves with ms until `until` (a log line's `event`, or exit). */
function timed(
  args: string[],
  until: string | "exit",
): Promise<{ ms: number; child: ChildProcess }> {
  const started = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      output += `${line}\n`;
      if (until !== "exit" && line.includes(`"event":"${until}"`)) {
        resolve({ ms: performance.now() - started, child });
      }
    });
    child.once("exit", (code) => {
      if (until === "exit" && code === 0) resolve({ ms: performance.now() - started, child });
      else reject(new Error(`${args.join(" ")} exited ${code}:\n${output}`));
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

const dir = mkdtempSync(join(tmpdir(), "berth-start-time-"));
const samples: Record<string, number[]> = {};
const record = (name: string, ms: number) => {
  samples[name] ??= [];
  samples[name].push(ms);
};
const [wGrpc, wHttp, gGrpc, gGossip, gHttp] = (await freePorts(5)).map((p) => `127.0.0.1:${p}`) as [
  string,
  string,
  string,
  string,
  string,
];
const mapFile = join(dir, "shard-map.json");
await writeShardMapFile(
  mapFile,
  planShardMap({ members: [{ id: "worker-0", address: wGrpc }], shardCount: 8, quorum: 1 }),
);
const workerArgs = [
  ...["--id", "worker-0", "--grpc", wGrpc, "--http", wHttp, "--shard-map-file", mapFile],
  ...["--journal", `sqlite://${join(dir, "journal.db")}`, "--gossip-peer", gGossip],
];
const gatewayArgs = [
  ...["--grpc", gGrpc, "--gossip", gGossip, "--http", gHttp, "--shard-map-file", mapFile],
];
const cliCall = ["pool", "default/measure", "--address", gGrpc, "--timeout", "30s"];
try {
  for (let run = 0; run < runs; run++) {
    for (const variant of Object.keys(variants) as Variant[]) {
      const args = variants[variant];
      record(
        `berth --help (${variant})`,
        (await timed([...args("cli/src/main.ts"), "--help"], "exit")).ms,
      );
      const worker = await timed(
        [...args("worker/src/main.ts"), ...workerArgs],
        "worker.listening",
      );
      record(`worker start to ready (${variant})`, worker.ms);
      const gateway = await timed(
        [...args("gateway/src/main.ts"), ...gatewayArgs],
        "gateway.listening",
      );
      record(`gateway start to ready (${variant})`, gateway.ms);
      if (run === 0 && variant === "tsx") {
        const client = new WorkerServiceClient(wGrpc, credentials.createInsecure());
        await new Promise((resolve, reject) =>
          client.configure(
            {
              spec: {
                pool: "default/measure",
                capacity: 5,
                labels: {},
                window: undefined,
                closed: false,
                generation: 1,
                deleted: false,
              },
              epoch: 0,
            },
            new Metadata(),
            { deadline: Date.now() + 30_000 },
            (e, r) => (e ? reject(e) : resolve(r)),
          ),
        );
        client.close();
      }
      record(
        `berth pool, one call (${variant})`,
        (await timed([...args("cli/src/main.ts"), ...cliCall], "exit")).ms,
      );
      await stop(gateway.child);
      await stop(worker.child);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const width = Math.max(...Object.keys(samples).map((k) => k.length));
console.log(`${"".padEnd(width)}    min  median     max   (ms, ${runs} runs each)`);
for (const [name, ms] of Object.entries(samples)) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => Math.round(s[Math.floor(q * (s.length - 1))] as number);
  console.log(
    `${name.padEnd(width)} ${String(at(0)).padStart(6)} ${String(at(0.5)).padStart(7)} ${String(at(1)).padStart(7)}`,
  );
}
