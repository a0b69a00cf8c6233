// Renders the CRDs as the YAML files kept in charts/berth/crds/.
import { stringify } from "yaml";
import { allCrds } from "./v1alpha1/index.js";

/** Where the chart keeps its CRDs, relative to the repository root. */
export const CRD_DIR = "charts/berth/crds";

/** Every CRD file: its name and exact contents. */
export function renderCrdFiles(): { readonly file: string; readonly text: string }[] {
  return allCrds().map(({ file, crd }) => ({
    file,
    text: `# Generated from kubernetes/src/api/v1alpha1 by \`npm run crds:gen\`. Do not edit.\n${stringify(crd, { lineWidth: 0 })}`,
  }));
}
