#!/usr/bin/env node
// `npm run build` (and the root `prepare` script, so `npm ci` runs it): bundles every
// product entrypoint with esbuild into <package>/dist/, mirroring src/ (worker/src/main.ts
// → worker/dist/main.js), so a process starts as plain JavaScript on Node 24, with no
// TypeScript compiled at start. Our own code (@berth/* included) is bundled; npm
// dependencies stay external imports, resolved from node_modules (`npm ci --omit=dev`
// is enough at run time). Tests and developer tools keep running the sources through tsx.
// The workspaces' `bin` entries (berth, berth-worker, berth-gateway, berth-operator) are small launchers
// in <package>/bin/ that import these bundles.
//
// `--out DIR` writes DIR/<package>/dist/… instead (used by e2e/src/build/build.int.test.ts).
import { chmodSync, readFileSync, rmSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";

const root = new URL("..", import.meta.url).pathname;
let build;
try {
  ({ build } = await import("esbuild"));
} catch (e) {
  if (e?.code !== "ERR_MODULE_NOT_FOUND") throw e;
  // A production install (`npm ci --omit=dev`) has no esbuild: it runs dist/ built
  // by a full install (the image's build stage), so there is nothing to do here.
  console.log("build: esbuild is not installed (devDependencies omitted); skipping the bundle");
  process.exit(0);
}
const { values } = parseArgs({ options: { out: { type: "string" } } });
const outRoot = values.out === undefined ? root : `${resolve(values.out)}/`;

/** Each entrypoint, relative to the repository root. Output: src/ → dist/, .ts → .js. */
const ENTRYPOINTS = [
  "worker/src/main.ts", // berth-worker
  "gateway/src/main.ts", // berth-gateway
  "operator/src/main.ts", // berth-operator
  "cli/src/main.ts", // berth (the CLI)
  "testing/src/cassandra/cli.ts", // the test Cassandra node's CLI
];

const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8"));
const runtime = new Set(Object.keys(pkg.dependencies ?? {}));
const builtins = new Set(builtinModules);
const packageOf = (spec) =>
  spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];

// Bare imports: node built-ins and runtime dependencies stay imports; @berth/* is
// bundled; anything else (a devDependency, a typo) fails the build instead of being
// inlined silently or missing from a production install.
const dependencies = {
  name: "berth-dependencies",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith("node:") || builtins.has(args.path)) {
        return { path: args.path, external: true };
      }
      const name = packageOf(args.path);
      if (name.startsWith("@berth/")) return undefined;
      if (runtime.has(name)) return { path: args.path, external: true };
      return {
        errors: [
          {
            text: `"${args.path}" is imported by product code (${args.importer.slice(root.length)}) but "${name}" is not in the root package.json "dependencies"`,
          },
        ],
      };
    });
  },
};

const started = performance.now();
const outputs = ENTRYPOINTS.map(
  (entry) => `${outRoot}${entry.replace("/src/", "/dist/").replace(/\.ts$/, ".js")}`,
);
for (const dir of new Set(ENTRYPOINTS.map((e) => `${outRoot}${e.split("/")[0]}/dist`))) {
  rmSync(dir, { recursive: true, force: true });
}
try {
  await Promise.all(
    ENTRYPOINTS.map((entry, i) =>
      build({
        entryPoints: [`${root}${entry}`],
        outdir: dirname(outputs[i]),
        entryNames: "[name]",
        // Dynamic imports become chunks loaded on demand: Kubernetes-mode code (and
        // @kubernetes/client-node, ~1 s to load) costs nothing to a local-mode start.
        splitting: true,
        chunkNames: "chunks/[name]-[hash]",
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node24",
        sourcemap: "linked",
        banner: { js: "#!/usr/bin/env node" },
        // A bundle is always a program's entry, also when imported by its bin/ launcher
        // (gateway/src/main.ts runs only `if (import.meta.main)`, for its tests).
        define: { "import.meta.main": "true" },
        plugins: [dependencies],
        logLevel: "warning",
      }),
    ),
  );
} catch {
  // esbuild has printed the errors.
  console.error("build: failed");
  process.exit(1);
}
for (const out of outputs) chmodSync(out, 0o755);
console.log(
  `build: ${ENTRYPOINTS.length} entrypoints bundled in ${Math.round(performance.now() - started)} ms → ${outputs.map((o) => o.slice(outRoot.length)).join(", ")}`,
);
