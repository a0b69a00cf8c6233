// For every alert of the chart's PrometheusRule: a `promtool test rules` case in which
// it fires (with its labels and rendered annotations) and one in which it stays quiet.
// The series are what the components export, labelled as a ServiceMonitor scrape
// labels them (namespace, pod) plus the registry's own `component` label.

/** One input series: a selector and promtool's expanding notation ("0+60x20", "1x10"). */
export interface InputSeries {
  readonly series: string;
  readonly values: string;
}

/** A case in which the alert fires. */
export interface FiringCase {
  readonly series: readonly InputSeries[];
  /** promtool eval_time, e.g. "10m". */
  readonly at: string;
  /** The alert's labels (severity included). */
  readonly labels: Readonly<Record<string, string>>;
  /** How `{{ $value … }}` renders in its annotations (after any humanize function). */
  readonly value: string;
}

/** A case in which the alert must not fire. */
export interface QuietCase {
  readonly series: readonly InputSeries[];
  readonly at: string;
  /** Why it must stay quiet (the test's message). */
  readonly why: string;
}

/** The cases of one alert. */
export interface AlertCase {
  readonly alert: string;
  readonly fires: readonly FiringCase[];
  readonly quiet: readonly QuietCase[];
}

const NS = "berth";
const op = (pod: string) => `namespace="${NS}",pod="${pod}",component="operator"`;
const worker = (pod: string) => `namespace="${NS}",pod="${pod}",component="worker"`;
const gateway = (pod: string) => `namespace="${NS}",pod="${pod}",component="gateway"`;
const s = (series: string, values: string): InputSeries => ({ series, values });
/** Two operator replicas: op-0 leads, op-1 stands by (its map gauges are stale). */
const leaders = [
  s(`berth_operator_leader{${op("op-0")}}`, "1x30"),
  s(`berth_operator_leader{${op("op-1")}}`, "0x30"),
];
const opLabels = (severity: string) => ({
  namespace: NS,
  pod: "op-0",
  component: "operator",
  severity,
});
const workerLabels = (severity: string) => ({
  namespace: NS,
  pod: "worker-1",
  component: "worker",
  severity,
});

/** The cases, one entry per alert of templates/prometheusrule.yaml. */
export const ALERT_CASES: readonly AlertCase[] = [
  {
    alert: "BerthQuorumLost",
    fires: [
      {
        series: [
          ...leaders,
          s(`berth_operator_quorum_lost{${op("op-0")}}`, "0 0 1x20"),
          s(`berth_operator_quorum_lost{${op("op-1")}}`, "0x20"),
        ],
        at: "5m",
        labels: opLabels("critical"),
        value: "1",
      },
    ],
    quiet: [
      {
        series: [
          ...leaders,
          s(`berth_operator_quorum_lost{${op("op-0")}}`, "0x20"),
          s(`berth_operator_quorum_lost{${op("op-1")}}`, "1x20"),
        ],
        at: "10m",
        why: "a standby's stale quorum_lost does not count",
      },
    ],
  },
  {
    alert: "BerthQuorumAtRisk",
    fires: [
      {
        series: [...leaders, s(`berth_operator_quorum_margin{${op("op-0")}}`, "1 0x20")],
        at: "10m",
        labels: opLabels("warning"),
        value: "0",
      },
    ],
    quiet: [
      {
        series: [
          ...leaders,
          s(`berth_operator_quorum_margin{${op("op-0")}}`, "1x20"),
          s(`berth_operator_quorum_margin{${op("op-1")}}`, "0x20"),
        ],
        at: "10m",
        why: "margin 1 on the leader; the standby's 0 is stale",
      },
      {
        series: [...leaders, s(`berth_operator_quorum_margin{${op("op-0")}}`, "1x5 0 0 1x10")],
        at: "10m",
        why: "at margin 0 for 2 minutes only",
      },
    ],
  },
  {
    alert: "BerthShardsUnassigned",
    fires: [
      {
        series: [...leaders, s(`berth_operator_shards_unassigned{${op("op-0")}}`, "0 12x20")],
        at: "5m",
        labels: opLabels("critical"),
        value: "12",
      },
    ],
    quiet: [
      {
        series: [
          ...leaders,
          s(`berth_operator_shards_unassigned{${op("op-0")}}`, "0x20"),
          s(`berth_operator_shards_unassigned{${op("op-1")}}`, "5x20"),
        ],
        at: "10m",
        why: "every shard has an owner on the leader's map",
      },
    ],
  },
  {
    alert: "BerthShardsRecoveringTooLong",
    fires: [
      {
        series: [s(`berth_shards_recovering{${worker("worker-1")}}`, "3x20")],
        at: "15m",
        labels: workerLabels("warning"),
        value: "3",
      },
    ],
    quiet: [
      {
        series: [s(`berth_shards_recovering{${worker("worker-1")}}`, "3x5 0x15")],
        at: "15m",
        why: "recovery finished within minutes",
      },
    ],
  },
  {
    alert: "BerthWorkerNotReady",
    fires: [
      {
        series: [s(`berth_worker_ready{${worker("worker-1")}}`, "1 0x20")],
        at: "15m",
        labels: workerLabels("warning"),
        value: "0",
      },
    ],
    quiet: [
      {
        series: [s(`berth_worker_ready{${worker("worker-1")}}`, "0x5 1x15")],
        at: "15m",
        why: "ready again after a restart",
      },
    ],
  },
  {
    alert: "BerthOperatorNoLeader",
    fires: [
      {
        series: [
          s(`berth_operator_leader{${op("op-0")}}`, "0x20"),
          s(`berth_operator_leader{${op("op-1")}}`, "0x20"),
        ],
        at: "5m",
        labels: { namespace: NS, severity: "critical" },
        value: "0",
      },
      {
        series: [s(`berth_shards_owned{${worker("worker-1")}}`, "4x20")],
        at: "5m",
        labels: { namespace: NS, severity: "critical" },
        value: "1",
      },
    ],
    quiet: [
      {
        series: leaders,
        at: "10m",
        why: "one replica leads",
      },
      {
        series: [
          s(`berth_operator_leader{${op("op-0")}}`, "1x3 0 1x15"),
          s(`berth_operator_leader{${op("op-1")}}`, "0x20"),
        ],
        at: "10m",
        why: "one minute between two terms",
      },
    ],
  },
  {
    alert: "BerthJournalAppendLatencyHigh",
    fires: [
      {
        series: [
          s(
            `berth_journal_append_seconds_bucket{${worker("worker-1")},result="ok",le="0.25"}`,
            "0x30",
          ),
          s(
            `berth_journal_append_seconds_bucket{${worker("worker-1")},result="ok",le="0.5"}`,
            "0+60x30",
          ),
          s(
            `berth_journal_append_seconds_bucket{${worker("worker-1")},result="ok",le="+Inf"}`,
            "0+60x30",
          ),
        ],
        at: "20m",
        labels: { namespace: NS, pod: "worker-1", severity: "warning" },
        value: "497.5ms",
      },
    ],
    quiet: [
      {
        series: [
          s(
            `berth_journal_append_seconds_bucket{${worker("worker-1")},result="ok",le="0.01"}`,
            "0+60x30",
          ),
          s(
            `berth_journal_append_seconds_bucket{${worker("worker-1")},result="ok",le="+Inf"}`,
            "0+60x30",
          ),
          s(
            `berth_journal_append_seconds_bucket{${worker("worker-1")},result="error",le="0.01"}`,
            "0x30",
          ),
          s(
            `berth_journal_append_seconds_bucket{${worker("worker-1")},result="error",le="+Inf"}`,
            "0+60x30",
          ),
        ],
        at: "20m",
        why: "ok appends take under 10 ms (slow failed ones are the write-error alert's business)",
      },
    ],
  },
  {
    alert: "BerthWriteErrorsHigh",
    fires: [
      {
        series: [
          s(`berth_requests_total{${gateway("gw-0")},method="Reserve",outcome="ok"}`, "0+100x20"),
          s(
            `berth_requests_total{${gateway("gw-0")},method="Reserve",outcome="insufficient_capacity"}`,
            "0+50x20",
          ),
          s(
            `berth_requests_total{${gateway("gw-0")},method="Release",outcome="journal_unavailable"}`,
            "0+10x20",
          ),
        ],
        at: "15m",
        labels: { namespace: NS, severity: "critical" },
        value: "6.25%",
      },
    ],
    quiet: [
      {
        series: [
          s(`berth_requests_total{${gateway("gw-0")},method="Reserve",outcome="ok"}`, "0+100x20"),
          s(
            `berth_requests_total{${gateway("gw-0")},method="Reserve",outcome="insufficient_capacity"}`,
            "0+500x20",
          ),
          s(
            `berth_requests_total{${gateway("gw-0")},method="Reserve",outcome="request_id_reused"}`,
            "0+50x20",
          ),
          s(
            `berth_requests_total{${gateway("gw-0")},method="Release",outcome="journal_unavailable"}`,
            "0+1x20",
          ),
          s(
            `berth_requests_total{${worker("worker-1")},method="Reserve",outcome="not_owner"}`,
            "0+100x20",
          ),
        ],
        at: "15m",
        why: "answers (insufficient capacity, request id reused) are not errors, and a worker's NOT_OWNER is retried by the gateway",
      },
    ],
  },
  {
    alert: "BerthGossipStale",
    fires: [
      {
        series: [s(`berth_gossip_replica_staleness_seconds{${gateway("gw-0")}}`, "1 45x20")],
        at: "10m",
        labels: { namespace: NS, pod: "gw-0", component: "gateway", severity: "warning" },
        value: "45s",
      },
    ],
    quiet: [
      {
        series: [
          s(`berth_gossip_replica_staleness_seconds{${gateway("gw-0")}}`, "1 2 1 45 45 1x15"),
        ],
        at: "10m",
        why: "stale for two minutes only (a failover)",
      },
    ],
  },
  {
    alert: "BerthLeaseFlapping",
    fires: [
      {
        series: [s(`berth_operator_member_transitions_total{${op("op-0")},to="dead"}`, "0+1x30")],
        at: "20m",
        labels: { namespace: NS, severity: "warning" },
        value: "15",
      },
    ],
    quiet: [
      {
        series: [
          s(`berth_operator_member_transitions_total{${op("op-0")},to="dead"}`, "0 0 1x28"),
          s(`berth_operator_member_transitions_total{${op("op-0")},to="live"}`, "0+1x30"),
        ],
        at: "20m",
        why: "one worker died once; joins are not flaps",
      },
    ],
  },
  {
    alert: "BerthLeaseRenewFailing",
    fires: [
      {
        series: [s(`berth_worker_lease_renew_failures_total{${worker("worker-1")}}`, "0+1x30")],
        at: "15m",
        labels: workerLabels("warning"),
        value: "5",
      },
    ],
    quiet: [
      {
        series: [s(`berth_worker_lease_renew_failures_total{${worker("worker-1")}}`, "0x5 1x25")],
        at: "15m",
        why: "one failed renewal, long ago",
      },
    ],
  },
];
