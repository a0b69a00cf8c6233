// The chart's PrometheusRule, rendered by the project-built helm, checked and unit-tested
// with promtool (every alert fires in one case and stays quiet in another), and checked
// against the metric names the processes really export; the ServiceMonitor and the
// Grafana dashboard too.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { ALERT_CASES, type AlertCase } from "./alert-cases.js";
import { type ExportedMetrics, exportedMetrics, metricNamesIn } from "./exported-metrics.js";
import { CHART_DIR, chartMissingReason, helmTemplate, type RenderedObject } from "./render.js";
import { monitoringTools } from "./tools.js";

const run = promisify(execFile);

interface Rule {
  readonly alert?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}
interface RuleGroup {
  readonly name: string;
  readonly rules: readonly Rule[];
}

const tools = await monitoringTools();
const skip = !tools.ok ? tools.reason : chartMissingReason();
if (skip !== undefined) console.log(`# skipped: ${skip}`);
const helm = tools.ok ? tools.helm : "helm";
const promtool = tools.ok ? tools.promtool : "promtool";

/** `{{ $labels.x }}` and `{{ $value … }}` of an annotation, as Prometheus renders them. */
function rendered(template: string, labels: Record<string, string>, value: string): string {
  return template
    .replace(/\{\{\s*\$labels\.(\w+)\s*\}\}/g, (_, name: string) => labels[name] ?? "")
    .replace(/\{\{\s*\$value[^}]*\}\}/g, value);
}

/** The promtool test file of one alert: its firing cases, then its quiet ones. */
function promtoolTests(c: AlertCase, rule: Rule, rulesFile: string): string {
  const tests = [
    ...c.fires.map((f) => ({
      interval: "1m",
      input_series: f.series,
      alert_rule_test: [
        {
          eval_time: f.at,
          alertname: c.alert,
          exp_alerts: [
            {
              exp_labels: f.labels,
              exp_annotations: Object.fromEntries(
                Object.entries(rule.annotations ?? {}).map(([k, v]) => [
                  k,
                  rendered(v, f.labels, f.value),
                ]),
              ),
            },
          ],
        },
      ],
    })),
    ...c.quiet.map((q) => ({
      interval: "1m",
      input_series: q.series,
      alert_rule_test: [{ eval_time: q.at, alertname: c.alert, exp_alerts: [] }],
    })),
  ];
  return stringify({ rule_files: [rulesFile], evaluation_interval: "1m", tests });
}

describe("the chart's monitoring", { skip }, () => {
  let dir: string;
  let objects: RenderedObject[];
  let groups: readonly RuleGroup[];
  let rulesFile: string;
  let exported: ExportedMetrics;
  const rules = () => groups.flatMap((g) => g.rules);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "berth-alerts-"));
    objects = await helmTemplate(helm, [
      "monitoring.prometheusRule.enabled=true",
      "monitoring.serviceMonitor.enabled=true",
      "monitoring.dashboard.enabled=true",
    ]);
    const rule = objects.find((o) => o.kind === "PrometheusRule");
    assert.ok(rule, "a PrometheusRule is rendered");
    groups = (rule.spec as { groups: RuleGroup[] }).groups;
    rulesFile = join(dir, "rules.yaml");
    writeFileSync(rulesFile, stringify({ groups }));
    exported = await exportedMetrics();
  });

  after(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test("monitoring objects are off by default", async () => {
    const kinds = (await helmTemplate(helm, [])).map((o) => o.kind);
    for (const kind of ["PrometheusRule", "ServiceMonitor"]) assert.ok(!kinds.includes(kind), kind);
    const dashboards = (await helmTemplate(helm, [])).filter(
      (o) => o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard !== undefined,
    );
    assert.deepEqual(dashboards, []);
  });

  test("promtool check rules accepts the rendered rules", async () => {
    const { stdout } = await run(promtool, ["check", "rules", rulesFile]);
    assert.match(stdout, new RegExp(`SUCCESS: ${rules().length} rules found`));
  });

  test("every alert has a severity, a summary and a description, and a test case", () => {
    const alerts = rules().map((r) => r.alert);
    assert.deepEqual(alerts.toSorted(), ALERT_CASES.map((c) => c.alert).toSorted());
    for (const r of rules()) {
      assert.match(r.labels?.severity ?? "", /^(critical|warning|info)$/, r.alert);
      assert.ok(r.annotations?.summary, `${r.alert} has a summary`);
      assert.ok(r.annotations?.description, `${r.alert} has a description`);
    }
  });

  for (const c of ALERT_CASES) {
    test(`promtool: ${c.alert} fires in ${c.fires.length} case(s) and stays quiet in ${c.quiet.length} (${c.quiet.map((q) => q.why).join("; ")})`, async () => {
      assert.ok(c.fires.length > 0 && c.quiet.length > 0);
      const rule = rules().find((r) => r.alert === c.alert);
      assert.ok(rule, `${c.alert} is in the rendered rules`);
      const file = join(dir, `${c.alert}.test.yaml`);
      writeFileSync(file, promtoolTests(c, rule, rulesFile));
      try {
        await run(promtool, ["test", "rules", file]);
      } catch (e: unknown) {
        const out = e as { stdout?: string; stderr?: string };
        assert.fail(`promtool test rules ${file}:\n${out.stdout ?? ""}${out.stderr ?? ""}`);
      }
    });
  }

  test("alert expressions name only metrics the processes export", () => {
    const unknown = new Map<string, string[]>();
    for (const r of rules()) {
      const missing = [...metricNamesIn(r.expr)].filter((n) => !exported.all.has(n));
      if (missing.length > 0) unknown.set(r.alert ?? r.expr, missing);
    }
    assert.deepEqual(Object.fromEntries(unknown), {});
    // The check itself can fail: a made-up name is caught.
    assert.ok(
      ![...metricNamesIn("rate(berth_no_such_metric_total[5m])")].every((n) => exported.all.has(n)),
    );
  });

  test("the ServiceMonitor scrapes the http-metrics port of the three components, once each", () => {
    const monitors = objects.filter((o) => o.kind === "ServiceMonitor");
    assert.equal(monitors.length, 1);
    const spec = monitors[0]?.spec as {
      selector: {
        matchLabels: Record<string, string>;
        matchExpressions: { key: string; operator: string; values: string[] }[];
      };
      endpoints: { port: string; path: string }[];
      namespaceSelector: { matchNames: string[] };
    };
    assert.deepEqual(
      spec.endpoints.map((e) => [e.port, e.path]),
      [["http-metrics", "/metrics"]],
    );
    assert.deepEqual(spec.namespaceSelector.matchNames, ["berth"]);
    const selects = (labels: Record<string, string> = {}) =>
      Object.entries(spec.selector.matchLabels).every(([k, v]) => labels[k] === v) &&
      spec.selector.matchExpressions.every(
        (e) => e.operator === "In" && e.values.includes(labels[e.key] ?? ""),
      );
    // What Prometheus would scrape: selected Services with a port named http-metrics.
    const scraped = objects.filter(
      (o) =>
        o.kind === "Service" &&
        selects(o.metadata.labels) &&
        (o.spec as { ports: { name: string }[] }).ports.some((p) => p.name === "http-metrics"),
    );
    const components = scraped.map((o) => o.metadata.labels?.["app.kubernetes.io/component"]);
    assert.deepEqual(components.toSorted(), ["gateway", "operator", "worker"]);
    // The port points at the containers' http-metrics port.
    for (const svc of scraped) {
      const port = (svc.spec as { ports: { name: string; targetPort: unknown }[] }).ports.find(
        (p) => p.name === "http-metrics",
      );
      assert.equal(port?.targetPort, "http-metrics", svc.metadata.name);
    }
  });

  test("the dashboard ConfigMap ships charts/berth/dashboards/berth.json, and every query names exported metrics", () => {
    const maps = objects.filter(
      (o) => o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard === "1",
    );
    assert.equal(maps.length, 1);
    const data = (maps[0]?.data ?? {}) as Record<string, string>;
    const shipped = data["berth.json"] ?? "";
    assert.equal(shipped, readFileSync(join(CHART_DIR, "dashboards", "berth.json"), "utf8"));
    const dashboard = JSON.parse(shipped) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const queries = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => [p.title, t.expr]),
    );
    assert.ok(queries.length >= 8, "the dashboard has its panels");
    const unknown = queries
      .map(([title, expr]) => ({
        title,
        missing: [...metricNamesIn(expr ?? "")].filter((n) => !exported.all.has(n)),
      }))
      .filter((q) => q.missing.length > 0);
    assert.deepEqual(unknown, []);
  });
});

describe("metricNamesIn", () => {
  test("finds metric names and skips functions, labels, keywords, durations and variables", () => {
    const names = metricNamesIn(
      'histogram_quantile(0.99, sum by (namespace, le) (rate(berth_journal_append_seconds_bucket{namespace="$namespace",result="ok"}[$__rate_interval]))) > 0.25 and on (namespace, pod) berth_operator_leader == 1 or absent(up{job="x"})',
    );
    assert.deepEqual([...names].toSorted(), [
      "berth_journal_append_seconds_bucket",
      "berth_operator_leader",
      "up",
    ]);
  });
});
