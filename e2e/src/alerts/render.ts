// Renders charts/berth with `helm template` and picks out the monitoring objects.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";

const run = promisify(execFile);

/** The chart the tests render: charts/berth of this checkout ($BERTH_CHART_DIR overrides). */
export const CHART_DIR =
  process.env.BERTH_CHART_DIR ?? fileURLToPath(new URL("../../../charts/berth", import.meta.url));

/** Why the chart cannot be rendered here (no Chart.yaml), or undefined. */
export function chartMissingReason(): string | undefined {
  return existsSync(`${CHART_DIR}/Chart.yaml`)
    ? undefined
    : `${CHART_DIR}/Chart.yaml does not exist (the chart is not complete in this checkout)`;
}

/** One rendered Kubernetes object. */
export interface RenderedObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly labels?: Record<string, string> };
  readonly [field: string]: unknown;
}

/** Thrown when `helm template` fails; carries its stderr. */
export class HelmTemplateError extends Error {
  override readonly name = "HelmTemplateError";
  constructor(
    readonly args: readonly string[],
    readonly stderr: string,
  ) {
    super(`helm ${args.join(" ")} failed:\n${stderr}`);
  }
}

/**
 * `helm template berth <chart> --namespace berth --set …` → the objects rendered.
 *
 * @param sets `key=value` strings, each passed as `--set`
 */
export async function helmTemplate(
  helm: string,
  sets: readonly string[],
  namespace = "berth",
): Promise<RenderedObject[]> {
  const args = ["template", "berth", CHART_DIR, "--namespace", namespace];
  for (const s of sets) args.push("--set", s);
  let stdout: string;
  try {
    ({ stdout } = await run(helm, args, { maxBuffer: 64 * 1024 * 1024 }));
  } catch (e: unknown) {
    throw new HelmTemplateError(args, String((e as { stderr?: unknown }).stderr ?? e));
  }
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as RenderedObject | null)
    .filter((o): o is RenderedObject => o !== null && typeof o === "object");
}
