// helm and promtool for the alert, ServiceMonitor and dashboard tests: the project-built
// ones from the Kubernetes toolchain cache (npm test builds them first, from the test
// file's `helm` and `promtool` name tokens).
import { ensureKubernetesBinaries, goExecutable, goMissingReason } from "@berth/testing/kubernetes";

/** Where helm and promtool are, or why the tests that need them are skipped. */
export type MonitoringTools =
  | { readonly ok: true; readonly helm: string; readonly promtool: string }
  | { readonly ok: false; readonly reason: string };

/**
 * Builds (or reuses) helm and promtool with {@link ensureKubernetesBinaries}. A machine
 * without Go, and without the binaries, gets a reason to skip; other failures throw.
 */
export async function monitoringTools(): Promise<MonitoringTools> {
  try {
    const { paths } = await ensureKubernetesBinaries({ commands: ["helm", "promtool"] });
    return { ok: true, helm: paths.helm as string, promtool: paths.promtool as string };
  } catch (e: unknown) {
    const why = goMissingReason(goExecutable());
    if (why !== undefined) return { ok: false, reason: `helm/promtool cannot be built: ${why}` };
    throw e;
  }
}
