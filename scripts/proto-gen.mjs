#!/usr/bin/env node
// `npm run proto:gen`: lint the .proto files with buf, then regenerate
// proto/src/gen from scratch (deleted first, so removed files do not linger):
// ts-proto code, and the binary FileDescriptorSets that server reflection serves.
// `--out DIR` writes the fresh copy under DIR/src/gen instead (used by
// proto/src/gen-fresh.int.test.ts, which fails when the committed output is stale).
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { parseArgs } from "node:util";

const root = new URL("..", import.meta.url).pathname;
const protoDir = `${root}proto`;
const bin = `${root}node_modules/.bin`;
// ts-proto is a Node script: make sure it runs on the pinned Node, not the system one.
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };
const { values } = parseArgs({ options: { out: { type: "string" } } });
const outRoot = values.out ?? protoDir;
const genDir = `${outRoot}/src/gen`;

function buf(...args) {
  if (!values.out) console.log(`▶ buf ${args.join(" ")}`);
  const r = spawnSync(`${bin}/buf`, args, { cwd: protoDir, env, stdio: "inherit" });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(`proto:gen: buf ${args[0]} failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

buf("lint");
rmSync(genDir, { recursive: true, force: true });
mkdirSync(genDir, { recursive: true });
// buf v2 prefixes each plugin's `out` (src/gen) with -o.
buf("generate", "--template", "buf.gen.yaml", "-o", outRoot);
const descriptorSet = ["--exclude-source-info", "--as-file-descriptor-set", "-o"];
buf("build", ...descriptorSet, `${genDir}/berth.binpb`);
buf(
  "build",
  "../node_modules/grpc-health-check/proto",
  ...descriptorSet,
  `${genDir}/grpc-health.binpb`,
);
if (!values.out) console.log("proto:gen: proto/src/gen regenerated");
