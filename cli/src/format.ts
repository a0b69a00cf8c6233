// Human and JSON renderings of CLI answers. Pure.
import { timestampMs, type v1 } from "@berth/proto";

type Ts = { seconds: number; nanos: number } | undefined;
type Dur = { seconds: number; nanos: number } | undefined;

/** Renders rows as columns separated by two spaces, the first row being the header. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** `2026-12-01T07:00:00Z` (fractions only when present). */
export function isoTime(t: Ts): string {
  if (t === undefined) return "";
  const iso = new Date(timestampMs(t)).toISOString();
  return t.nanos === 0 ? iso.replace(/\.000Z$/, "Z") : iso;
}

/** A window as `2026-12-01 07:00–11:00Z` when on one day, else `start – end`; `-` when none. */
export function windowText(w: v1.TimeWindow | undefined): string {
  if (w === undefined || (w.start === undefined && w.end === undefined)) return "-";
  const start = isoTime(w.start);
  const end = isoTime(w.end);
  const sameDay = start.slice(0, 10) === end.slice(0, 10);
  const short = (s: string) => s.slice(11).replace(/:00(\.\d+)?Z$/, "$1Z");
  if (sameDay && /T\d\d:\d\d:00Z$/.test(start) && /T\d\d:\d\d:00Z$/.test(end)) {
    return `${start.slice(0, 10)} ${short(start).replace(/Z$/, "")}–${short(end)}`;
  }
  return `${start} – ${end}`;
}

/** Labels as `k=v,k=v`, sorted; `-` when none. */
export function labelsText(labels: Readonly<Record<string, string>>): string {
  const entries = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length === 0 ? "-" : entries.map(([k, v]) => `${k}=${v}`).join(",");
}

/** A duration in seconds as `0.25s`. */
export function durationText(d: Dur): string {
  if (d === undefined) return "-";
  const s = d.seconds + d.nanos / 1e9;
  return `${Number(s.toFixed(3))}s`;
}

/** A Duration in proto3 JSON form (`"1.5s"`). */
function durationJson(d: Dur): string | undefined {
  return d === undefined ? undefined : `${Number((d.seconds + d.nanos / 1e9).toFixed(9))}s`;
}

function windowJson(w: v1.TimeWindow | undefined) {
  return w === undefined ? null : { start: isoTime(w.start), end: isoTime(w.end) };
}

/** The availability table: one row per pool. */
export function availabilityTable(pools: readonly v1.PoolAvailability[]): string {
  return table([
    ["POOL", "AVAILABLE", "RESERVED", "CAPACITY", "WINDOW", "LABELS", "AGE"],
    ...pools.map((p) => [
      p.closed ? `${p.pool} (closed)` : p.pool,
      String(p.available),
      String(p.reserved),
      String(p.capacity),
      windowText(p.window),
      labelsText(p.labels),
      durationText(p.staleness),
    ]),
  ]);
}

/** One pool as a two-column table. */
export function poolTable(p: v1.Pool): string {
  return table([
    ["pool", p.pool],
    ["capacity", String(p.capacity)],
    ["reserved", `${p.reserved}${p.overCommitted ? " (over-committed)" : ""}`],
    ["available", String(p.available)],
    ["active reservations", String(p.activeReservations)],
    ["closed", String(p.closed)],
    ["window", windowText(p.window)],
    ["labels", labelsText(p.labels)],
    ["version", String(p.version)],
    ["shard", `${p.shard} (owner ${p.owner || "-"}, epoch ${p.epoch})`],
  ]);
}

/** Every field of a pool, zero values included (unlike proto3 JSON), for scripts. */
export function poolJson(p: v1.Pool): Record<string, unknown> {
  return {
    pool: p.pool,
    capacity: p.capacity,
    reserved: p.reserved,
    available: p.available,
    labels: p.labels,
    window: windowJson(p.window),
    closed: p.closed,
    version: p.version,
    activeReservations: p.activeReservations,
    overCommitted: p.overCommitted,
    shard: p.shard,
    owner: p.owner,
    epoch: p.epoch,
  };
}

/** Every field of an availability entry, zero values included. */
export function availabilityJson(p: v1.PoolAvailability): Record<string, unknown> {
  return {
    pool: p.pool,
    capacity: p.capacity,
    reserved: p.reserved,
    available: p.available,
    labels: p.labels,
    window: windowJson(p.window),
    closed: p.closed,
    version: p.version,
    staleness: durationJson(p.staleness),
  };
}

/** Summary line under the availability table. */
export function availabilityFooter(
  count: number,
  maxStaleness: Dur,
  nextPageToken: string,
): string {
  const head = `${count} pool${count === 1 ? "" : "s"}${
    count > 0 ? ` (data at most ${durationText(maxStaleness)} old)` : ""
  }`;
  return nextPageToken === ""
    ? head
    : `${head}; more: --page-token '${nextPageToken}' or --all-pages`;
}

/** A failed call, as the CLI prints it. */
export interface CallFailure {
  /** gRPC status name, e.g. FAILED_PRECONDITION. */
  readonly status: string;
  readonly code: number;
  readonly message: string;
  readonly reason?: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  readonly retryDelayMs?: number | undefined;
}

/** `error: FAILED_PRECONDITION: … [reason INSUFFICIENT_CAPACITY; available=3]`. */
export function failureText(f: CallFailure): string {
  const details: string[] = [];
  if (f.reason !== undefined && f.reason !== "") details.push(`reason ${f.reason}`);
  for (const [k, v] of Object.entries(f.metadata).sort(([a], [b]) => (a < b ? -1 : 1))) {
    details.push(`${k}=${v}`);
  }
  if (f.retryDelayMs !== undefined) details.push(`retry in ${f.retryDelayMs}ms`);
  return `error: ${f.status}: ${f.message}${details.length > 0 ? ` [${details.join("; ")}]` : ""}`;
}
