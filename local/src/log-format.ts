// Formatting child-process log lines for the supervisor's terminal. Pure.

/** How the supervisor relays its children's logs. */
export type LogFormat = "pretty" | "json";

const LEVELS: Record<number, string> = {
  10: "trace",
  20: "debug",
  30: "info",
  40: "warn",
  50: "error",
  60: "fatal",
};
// `event` names a line for programs and tests (see docs/architecture.md, "Logs"); people
// read the message.
const HIDDEN = new Set([
  "level",
  "time",
  "msg",
  "event",
  "pid",
  "hostname",
  "component",
  "proc",
  "v",
]);
const REPEATS_NAME = new Set(["worker", "node", "id"]);
const COLORS = [36, 33, 35, 32, 34, 91, 96, 93, 95, 92];
const LEVEL_COLORS: Record<string, number> = {
  warn: 33,
  error: 31,
  fatal: 31,
  debug: 90,
  trace: 90,
};

/** Options of {@link formatLogLine}. */
export interface FormatOptions {
  readonly format: LogFormat;
  /** Width the process name is padded to (pretty). */
  readonly nameWidth?: number;
  /** ANSI colours (pretty). */
  readonly color?: boolean;
  /** Which stream the line came from: non-JSON stderr lines are errors. */
  readonly stream?: "stdout" | "stderr";
}

/**
 * One line of a child's output as the supervisor prints it.
 *
 * - `json`: the child's JSON event with `"proc": name` added first — still one JSON
 *   object per line, so `npm start -- --log-format json | jq` works. Lines that are
 *   not JSON (a stack trace from a crash) are wrapped as `{"proc","level","msg"}`.
 * - `pretty`: `worker-0 │ 12:00:01.123 INFO  worker listening grpc=127.0.0.1:50061`.
 */
export function formatLogLine(name: string, line: string, options: FormatOptions): string {
  const event = parseEvent(line);
  if (options.format === "json") {
    return JSON.stringify(
      event === undefined
        ? {
            proc: name,
            level: options.stream === "stderr" ? "error" : "info",
            time: new Date().toISOString(),
            msg: line,
          }
        : { proc: name, ...event },
    );
  }
  const color = options.color === true;
  const paint = (code: number | undefined, text: string) =>
    color && code !== undefined ? `\x1b[${code}m${text}\x1b[0m` : text;
  const prefix = `${paint(colorOf(name), name.padEnd(options.nameWidth ?? name.length))} │`;
  if (event === undefined) {
    return `${prefix} ${options.stream === "stderr" ? paint(31, line) : line}`;
  }
  const level = levelOf(event.level);
  const time = timeOf(event.time);
  const fields = Object.entries(event)
    // The prefix already names the process: drop fields that only repeat it.
    .filter(([k, v]) => !HIDDEN.has(k) && !(REPEATS_NAME.has(k) && v === name))
    .map(([k, v]) => `${paint(90, `${k}=`)}${fieldText(v)}`)
    .join(" ");
  const msg = typeof event.msg === "string" ? event.msg : "";
  return [
    prefix,
    paint(90, time),
    paint(LEVEL_COLORS[level], level.toUpperCase().padEnd(5)),
    msg,
    fields,
  ]
    .filter((p) => p !== "")
    .join(" ");
}

function parseEvent(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    // Not JSON after all: relayed as text.
    return undefined;
  }
}

function levelOf(level: unknown): string {
  if (typeof level === "number") return LEVELS[level] ?? String(level);
  return typeof level === "string" ? level : "info";
}

function timeOf(time: unknown): string {
  const d =
    typeof time === "number"
      ? new Date(time)
      : typeof time === "string"
        ? new Date(time)
        : undefined;
  if (d === undefined || Number.isNaN(d.getTime())) return "";
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function fieldText(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === "object") {
    const err = v as { type?: unknown; message?: unknown };
    if (typeof err.message === "string") {
      return JSON.stringify(`${typeof err.type === "string" ? `${err.type}: ` : ""}${err.message}`);
    }
    return JSON.stringify(v);
  }
  return String(v);
}

function colorOf(name: string): number | undefined {
  let h = 0;
  for (const c of name) h = (h * 31 + (c.codePointAt(0) ?? 0)) >>> 0;
  const digit = /(\d+)$/.exec(name);
  return COLORS[
    (digit ? Number(digit[1]) + (name.startsWith("worker") ? 0 : 5) : h) % COLORS.length
  ];
}
