// One table of CapacityPool manifests, good and bad, that local mode's validation
// and a real kube-apiserver (with the generated CRD, `kubectl apply` strict field
// validation) must judge alike: the same ones pass, the same ones fail on the same
// field. Cases where local mode is deliberately stricter (it refuses `status`,
// and metadata fields a manifest has no business setting) are not in this table.

/** A manifest and the verdict both validators must reach. */
export interface CapacityPoolCase {
  /** A sentence: what the case shows. */
  readonly title: string;
  /** The object, without apiVersion/kind (added by the runner). */
  readonly object: {
    readonly metadata: Record<string, unknown>;
    readonly spec?: unknown;
  } & Record<string, unknown>;
  /** Undefined for a valid manifest; else the field the rejection names. */
  readonly rejects?: string;
}

const meta = (name: string, extra: Record<string, unknown> = {}) => ({ name, ...extra });

/** The shared table. Names are unique so the cases can be applied into one namespace. */
export const CAPACITY_POOL_CASES: readonly CapacityPoolCase[] = [
  {
    title: "a minimal pool (capacity only) is valid",
    object: { metadata: meta("minimal"), spec: { capacity: 1 } },
  },
  {
    title: "capacity 0 and the int32 maximum are valid",
    object: { metadata: meta("max-capacity"), spec: { capacity: 2_147_483_647 } },
  },
  {
    title: "a full pool with labels, a window and closed is valid",
    object: {
      metadata: meta("full", { labels: { zone: "north", "app.kubernetes.io/part-of": "berth" } }),
      spec: {
        capacity: 40,
        window: { start: "2026-12-01T07:00:00Z", end: "2026-12-01T11:00:00.5+01:00" },
        closed: false,
      },
    },
  },
  {
    title: "a negative capacity is rejected",
    object: { metadata: meta("negative"), spec: { capacity: -1 } },
    rejects: "spec.capacity",
  },
  {
    title: "a capacity above int32 is rejected",
    object: { metadata: meta("too-big"), spec: { capacity: 2_147_483_648 } },
    rejects: "spec.capacity",
  },
  {
    title: "a fractional capacity is rejected",
    object: { metadata: meta("fraction"), spec: { capacity: 1.5 } },
    rejects: "spec.capacity",
  },
  {
    title: "a capacity given as a string is rejected",
    object: { metadata: meta("string-capacity"), spec: { capacity: "10" } },
    rejects: "spec.capacity",
  },
  {
    title: "a missing capacity is rejected",
    object: { metadata: meta("no-capacity"), spec: { closed: true } },
    rejects: "spec.capacity",
  },
  {
    title: "a missing spec is rejected",
    object: { metadata: meta("no-spec") },
    rejects: "spec",
  },
  {
    title: "an unknown spec field is rejected (strict field validation)",
    object: { metadata: meta("typo"), spec: { capacity: 1, capcity: 2 } },
    rejects: "spec.capcity",
  },
  {
    title: "an unknown window field is rejected",
    object: {
      metadata: meta("window-tz"),
      spec: {
        capacity: 1,
        window: { start: "2026-12-01T07:00:00Z", end: "2026-12-01T08:00:00Z", tz: "UTC" },
      },
    },
    rejects: "spec.window.tz",
  },
  {
    title: "a window whose end is not after its start is rejected (CEL rule)",
    object: {
      metadata: meta("empty-window"),
      spec: {
        capacity: 1,
        window: { start: "2026-12-01T08:00:00Z", end: "2026-12-01T08:00:00Z" },
      },
    },
    rejects: "spec.window.end",
  },
  {
    title: "a window with a date but no time is rejected",
    object: {
      metadata: meta("date-only"),
      spec: { capacity: 1, window: { start: "2026-12-01", end: "2026-12-02T00:00:00Z" } },
    },
    rejects: "spec.window.start",
  },
  {
    title: "a window without an end is rejected",
    object: {
      metadata: meta("no-end"),
      spec: { capacity: 1, window: { start: "2026-12-01T08:00:00Z" } },
    },
    rejects: "spec.window.end",
  },
  {
    title: "closed must be a boolean",
    object: { metadata: meta("closed-string"), spec: { capacity: 1, closed: "yes" } },
    rejects: "spec.closed",
  },
  {
    title: "a name with capitals and underscores is rejected",
    object: { metadata: meta("North_Slot"), spec: { capacity: 1 } },
    rejects: "metadata.name",
  },
  {
    title: "a label value that starts with a dash is rejected",
    object: {
      metadata: meta("bad-label-value", { labels: { day: "-monday" } }),
      spec: { capacity: 1 },
    },
    rejects: "metadata.labels",
  },
  {
    title: "a label key with a space is rejected",
    object: {
      metadata: meta("bad-label-key", { labels: { "bad key": "x" } }),
      spec: { capacity: 1 },
    },
    rejects: "metadata.labels",
  },
];
