// `npm run crds:gen`: writes charts/berth/crds/*.yaml from the API types.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CRD_DIR, renderCrdFiles } from "./crd-yaml.js";

const root = new URL("../../../", import.meta.url).pathname;
const dir = join(root, CRD_DIR);
mkdirSync(dir, { recursive: true });
const files = renderCrdFiles();
for (const stale of readdirSync(dir)) {
  if (!files.some((f) => f.file === stale)) rmSync(join(dir, stale));
}
for (const { file, text } of files) writeFileSync(join(dir, file), text);
console.log(`wrote ${files.map((f) => join(CRD_DIR, f.file)).join(", ")}`);
