// Every values file's rendered manifests pass `kubectl apply --dry-run=server` against a
// real kube-apiserver (the project-built one, with the berth.dev CRDs and the real
// prometheus-operator CRDs installed): all objects valid as the API server sees them,
// CEL of the admission policy included. And `helm install --dry-run=server` against it
// (kubeVersion check, NOTES).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type ControlPlane, goMissingReason, startControlPlane } from "@berth/testing/kubernetes";
import {
  CHART_DIR,
  helmBinary,
  helmTemplate,
  parseManifests,
  prometheusOperatorCrdDir,
  run,
  VALUES_FILES,
} from "./chart.js";

const skip = goMissingReason();
if (skip) console.log(`# SKIP chart dry-run tests: ${skip}`);

const NS = "berth";
const MONITORING_CRDS = ["servicemonitors", "prometheusrules"];

describe("charts/berth on a real kube-apiserver (server-side dry run)", { skip }, () => {
  let cp: ControlPlane;
  let helm: string;
  let scratch: string;
  const kubectl = (...args: string[]) => cp.kubectl(args);

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), "berth-chart-dry-run-"));
    [helm, cp] = await Promise.all([helmBinary(), startControlPlane()]);
    const crdDir = await prometheusOperatorCrdDir();
    const files = [
      join(CHART_DIR, "crds"),
      ...MONITORING_CRDS.map((c) => join(crdDir, `monitoring.coreos.com_${c}.yaml`)),
    ];
    // Server-side: the prometheus-operator CRDs are too large for the last-applied annotation.
    const applied = await kubectl("apply", "--server-side", ...files.flatMap((f) => ["-f", f]));
    assert.equal(applied.code, 0, applied.stderr);
    const established = await kubectl(
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/capacitypools.berth.dev",
      "crd/shardmaps.berth.dev",
      ...MONITORING_CRDS.map((c) => `crd/${c}.monitoring.coreos.com`),
    );
    assert.equal(established.code, 0, established.stderr);
    assert.equal((await kubectl("create", "namespace", NS)).code, 0);
    // What kube-controller-manager (not run here) does in every namespace of a real cluster;
    // the helm test Pod runs as it (Pod admission looks it up).
    assert.equal((await kubectl("create", "serviceaccount", "default", "-n", NS)).code, 0);
  });

  after(async () => {
    await cp?.stop();
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  });

  for (const f of VALUES_FILES) {
    test(`${f}: every rendered object is accepted by kubectl apply --dry-run=server`, async () => {
      const r = await helmTemplate(helm, { values: [f], namespace: NS });
      assert.equal(r.code, 0, r.stderr);
      const objects = parseManifests(r.stdout);
      const file = join(scratch, f);
      writeFileSync(file, r.stdout);
      const applied = await kubectl("apply", "--dry-run=server", "-n", NS, "-f", file);
      assert.equal(applied.code, 0, `${applied.stderr}\n${applied.stdout}`);
      const lines = applied.stdout.trim().split("\n");
      assert.equal(lines.length, objects.length, applied.stdout);
      for (const line of lines) assert.match(line, /\((server dry run)\)$/);
    });
  }

  test("helm install --dry-run=server passes kubeVersion and prints how to call the gateway", async () => {
    const r = await run(helm, [
      "install",
      "berth",
      CHART_DIR,
      "--namespace",
      NS,
      "--dry-run=server",
      "--kubeconfig",
      cp.adminKubeconfig,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const notes = r.stdout.slice(r.stdout.indexOf("NOTES:"));
    assert.match(notes, /kubectl -n berth port-forward service\/berth-gateway 50051:50051/);
    assert.match(notes, /berth reserve delivery\/north-2030-06-04-morning 2/);
    assert.match(notes, /helm test berth -n berth/);
  });
});
