#!/usr/bin/env node
// `berth`: the berth CLI, compiled by `npm run build` (which `npm ci` runs). npm links
// this file into node_modules/.bin at install time, before the build has made dist/, so
// the link cannot point at the bundle itself.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bundle = new URL("../dist/main.js", import.meta.url);
if (!existsSync(fileURLToPath(bundle))) {
  process.stderr.write(
    `berth: ${fileURLToPath(bundle)} is missing; run \`npm run build\` (npm ci runs it)\n`,
  );
  process.exit(1);
}
await import(bundle.href);
