#!/usr/bin/env node
// `npm run proto:gen`: lint the .proto files with buf, then regenerate
// proto/src/gen from scratch (deleted first, so removed files do not linger).
// proto/src/gen-fresh.int.test.ts fails when the committed output is stale.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const protoDir = `${root}proto`;
const bin = `${root}node_modules/.bin`;
// ts-proto is a Node script: make sure it runs on the pinned Node, not the system one.
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };

function buf(...args) {
  console.log(`▶ buf ${args.join(" ")}`);
  const r = spawnSync(`${bin}/buf`, args, { cwd: protoDir, env, stdio: "inherit" });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(
      `proto:gen: buf ${args[0]} failed (exit ${r.status}); proto/src/gen left as it was`,
    );
    process.exit(r.status ?? 1);
  }
}

buf("lint");
rmSync(`${protoDir}/src/gen`, { recursive: true, force: true });
buf("generate");
console.log("proto:gen: proto/src/gen regenerated");
