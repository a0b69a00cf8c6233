/**
 * Test helpers for charts/berth: run the project-built helm (lint, template) and parse what
 * it renders; fetch the prometheus-operator CRDs from the Go module proxy (cached in the
 * harness's module cache, outside the clone) for the dry-run against a real API server.
 */
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import {
  defaultLayout,
  ensureKubernetesBinaries,
  goEnv,
  goExecutable,
} from "@berth/testing/kubernetes";
import { parseAllDocuments } from "yaml";

const root = new URL("../../../", import.meta.url).pathname;

/** The chart under test. */
export const CHART_DIR = join(root, "charts/berth");
/** The values files every chart test renders (defaults, TLS on, NetworkPolicy on, …). */
export const VALUES_DIR = new URL("./values/", import.meta.url).pathname;
/** `name.yaml` of every values file in {@link VALUES_DIR}, sorted. */
export const VALUES_FILES: readonly string[] = readdirSync(VALUES_DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort();

/** The prometheus-operator release whose CRDs (ServiceMonitor, PrometheusRule) the tests install. */
export const PROMETHEUS_OPERATOR_VERSION = "v0.85.0";

/** A Kubernetes object as helm renders it (only the fields tests look at are typed). */
export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Record<string, string>;
    readonly annotations?: Record<string, string>;
  };
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked field by field
  readonly [field: string]: any;
}

/** What a helm (or other) command printed and its exit code. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Thrown when `helm template` (or a command a helper runs) fails unexpectedly; carries its output. */
export class ChartCommandError extends Error {
  override readonly name = "ChartCommandError";
  constructor(
    readonly command: readonly string[],
    readonly result: CommandResult,
  ) {
    super(`${command.join(" ")} exited ${result.code}:\n${result.stderr || result.stdout}`);
  }
}

/** Runs a command, resolving (never rejecting) with its exit code and output. */
export function run(command: string, args: readonly string[], env?: NodeJS.ProcessEnv) {
  return new Promise<CommandResult>((resolve) => {
    execFile(
      command,
      [...args],
      { maxBuffer: 64 * 1024 * 1024, env: env ?? process.env },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr: error && !stderr ? String(error) : stderr });
      },
    );
  });
}

/** The project-built helm (built or reused from the harness cache). */
export async function helmBinary(): Promise<string> {
  const built = await ensureKubernetesBinaries({ commands: ["helm"] });
  const helm = built.paths.helm;
  if (!helm) throw new Error("ensureKubernetesBinaries returned no helm path");
  return helm;
}

/** How to render the chart. */
export interface RenderOptions {
  /** Values files (names in {@link VALUES_DIR}, or absolute paths). */
  readonly values?: readonly string[];
  /** `--set` / `--set-string` pairs. */
  readonly set?: readonly string[];
  readonly setString?: readonly string[];
  readonly setJson?: readonly string[];
  readonly release?: string;
  readonly namespace?: string;
  /** Chart directory (default {@link CHART_DIR}). */
  readonly chart?: string;
}

/** The `helm template` arguments for `o` (tests render hooks too: `helm test` objects). */
export function templateArgs(o: RenderOptions = {}): string[] {
  const valuesPath = (v: string) => (v.startsWith("/") ? v : join(VALUES_DIR, v));
  return [
    "template",
    o.release ?? "berth",
    o.chart ?? CHART_DIR,
    "--namespace",
    o.namespace ?? "berth",
    ...(o.values ?? []).flatMap((v) => ["--values", valuesPath(v)]),
    ...(o.set ?? []).flatMap((s) => ["--set", s]),
    ...(o.setString ?? []).flatMap((s) => ["--set-string", s]),
    ...(o.setJson ?? []).flatMap((s) => ["--set-json", s]),
  ];
}

/** `helm template`, raw. */
export function helmTemplate(helm: string, o: RenderOptions = {}): Promise<CommandResult> {
  return run(helm, templateArgs(o));
}

/** `helm template`, parsed into objects (throws {@link ChartCommandError} when helm fails). */
export async function render(helm: string, o: RenderOptions = {}): Promise<K8sObject[]> {
  const args = templateArgs(o);
  const r = await run(helm, args);
  if (r.code !== 0) throw new ChartCommandError([helm, ...args], r);
  return parseManifests(r.stdout);
}

/** Parses a multi-document YAML stream, dropping empty documents; YAML errors throw. */
export function parseManifests(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw doc.errors[0];
    const value = doc.toJS() as K8sObject | null;
    if (value !== null) out.push(value);
  }
  return out;
}

/** The one object of `kind` named `name` (throws naming what there is, when missing). */
export function find(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) {
    const have = objects.map((x) => `${x.kind}/${x.metadata.name}`).join(", ");
    throw new Error(`no ${kind}/${name} rendered; have: ${have}`);
  }
  return o;
}

/**
 * The directory of the prometheus-operator CRD manifests at `version`, downloaded once by
 * `go mod download` into the harness's module cache (outside the clone).
 */
export async function prometheusOperatorCrdDir(
  version: string = PROMETHEUS_OPERATOR_VERSION,
): Promise<string> {
  const layout = defaultLayout();
  const args = [
    "mod",
    "download",
    "-json",
    `github.com/prometheus-operator/prometheus-operator@${version}`,
  ];
  const r = await run(goExecutable(), args, goEnv(layout, process.env));
  if (r.code !== 0) throw new ChartCommandError(["go", ...args], r);
  const dir = (JSON.parse(r.stdout) as { Dir?: string }).Dir;
  if (!dir) throw new ChartCommandError(["go", ...args], { ...r, stderr: "no Dir in the answer" });
  return join(dir, "example", "prometheus-operator-crd");
}
