// helm and promtool for the alert, ServiceMonitor and dashboard tests: the project-built
// ones from the Kubernetes toolchain cache (built from their Go modules on first use).
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  defaultLayout,
  ensureKubernetesBinaries,
  goExecutable,
  goMissingReason,
} from "../kubernetes/build.js";
import { KubernetesBuildSpecError } from "../kubernetes/build-config.js";

/** Where helm and promtool are, or why the tests that need them are skipped. */
export type MonitoringTools =
  | { readonly ok: true; readonly helm: string; readonly promtool: string; readonly note?: string }
  | { readonly ok: false; readonly reason: string };

/**
 * Builds (or reuses) helm and promtool with {@link ensureKubernetesBinaries}. Until the
 * harness knows how to build them (an older build-config), falls back to a helm already
 * in the cache and Debian's /usr/bin/promtool, saying so in `note`. Never throws: a
 * machine without Go (and without the binaries) gets a reason to skip.
 */
export async function monitoringTools(): Promise<MonitoringTools> {
  try {
    const { paths } = await ensureKubernetesBinaries({ commands: ["helm", "promtool"] });
    return { ok: true, helm: paths.helm as string, promtool: paths.promtool as string };
  } catch (e: unknown) {
    if (!(e instanceof KubernetesBuildSpecError)) {
      const why = goMissingReason(goExecutable());
      if (why !== undefined) return { ok: false, reason: `helm/promtool cannot be built: ${why}` };
      throw e;
    }
    const helm = join(defaultLayout().bin, "helm");
    const promtool = "/usr/bin/promtool";
    if (!existsSync(helm) || !existsSync(promtool)) {
      return { ok: false, reason: `the harness cannot build helm/promtool yet (${e.message})` };
    }
    return { ok: true, helm, promtool, note: `fallback: ${helm} and ${promtool} (${e.message})` };
  }
}
