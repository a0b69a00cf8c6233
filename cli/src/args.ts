// Command-line parsing of the `berth` CLI: argv in, a typed command out. Pure.
import { parseArgs } from "node:util";
import { UsageError } from "@berth/common";
import { parseRfc3339, type Timestamp } from "@berth/proto";

/** Address of the gateway when neither `--address` nor `BERTH_ADDRESS` says otherwise. */
export const DEFAULT_ADDRESS = "localhost:50051";
/** Per-call deadline when `--timeout` is not given. */
export const DEFAULT_TIMEOUT_MS = 5000;

/** Options every command takes. */
export interface GlobalOptions {
  readonly address: string;
  readonly json: boolean;
  readonly timeoutMs: number;
}

/** A parsed command line. */
export type CliCommand =
  | { readonly command: "help"; readonly topic?: string }
  | (GlobalOptions &
      (
        | {
            readonly command: "reserve";
            readonly pool: string;
            readonly units: number;
            /** Undefined: the CLI generates a UUID and prints it. */
            readonly requestId: string | undefined;
          }
        | { readonly command: "release"; readonly reservationId: string }
        | {
            readonly command: "availability";
            readonly selector: string;
            readonly window: { start: Timestamp; end: Timestamp } | undefined;
            readonly minUnits: number;
            readonly pageSize: number;
            readonly pageToken: string;
            readonly allPages: boolean;
            readonly includeClosed: boolean;
          }
        | { readonly command: "pool"; readonly pool: string }
        | {
            readonly command: "health";
            /** "" asks about the server as a whole. */
            readonly service: string;
          }
      ));

const COMMANDS = ["reserve", "release", "availability", "pool", "health", "help"] as const;

const OPTIONS = {
  address: { type: "string" },
  json: { type: "boolean" },
  timeout: { type: "string" },
  help: { type: "boolean", short: "h" },
  "request-id": { type: "string" },
  selector: { type: "string", short: "l" },
  from: { type: "string" },
  to: { type: "string" },
  "min-units": { type: "string" },
  "page-size": { type: "string" },
  "page-token": { type: "string" },
  "all-pages": { type: "boolean" },
  "include-closed": { type: "boolean" },
  service: { type: "string" },
} as const;

const GLOBAL = ["address", "json", "timeout", "help"];
const PER_COMMAND: Record<string, readonly string[]> = {
  reserve: ["request-id"],
  release: [],
  pool: [],
  health: ["service"],
  availability: [
    "selector",
    "from",
    "to",
    "min-units",
    "page-size",
    "page-token",
    "all-pages",
    "include-closed",
  ],
  help: [],
};

/** Usage text, for one command or all of them. */
export function usage(topic?: string): string {
  const common = `Common options:
  --address HOST:PORT   gateway address (env BERTH_ADDRESS, default ${DEFAULT_ADDRESS})
  --timeout DURATION    deadline of each call: 500ms, 5s, 1m (env BERTH_TIMEOUT, default 5s)
  --json                print the answer (or the error) as JSON
  -h, --help            show help`;
  const commands: Record<string, string> = {
    reserve: `berth reserve <pool> <units> [--request-id ID]
  Reserves units of a pool ("namespace/name"). Without --request-id a UUID is generated
  and printed: rerun with it to retry safely (a retry returns the same reservation).`,
    release: `berth release <reservation-id>
  Releases a reservation. Idempotent: releasing twice reports it was already released.`,
    availability: `berth availability [--selector SEL] [--from RFC3339 --to RFC3339] [--min-units N]
                   [--page-size N] [--page-token T | --all-pages] [--include-closed]
  Lists pools with free units, from the gateway's replicated (slightly stale) copy.
  --selector / -l  Kubernetes label selector, e.g. 'zone=north,kind in (van,bike)'
  --from, --to     only pools whose window overlaps [from, to)`,
    pool: `berth pool <pool>
  Shows one pool's authoritative state, read from its owner.`,
    health: `berth health [--service NAME]
  Asks the standard gRPC health service (grpc.health.v1.Health/Check) at --address.
  Exit 0 when it answers SERVING, 1 otherwise (NOT_SERVING, SERVICE_UNKNOWN, no answer).
  --service  the service to ask about, e.g. berth.v1.CapacityService (default: the
             server as a whole)`,
  };
  const known = topic === undefined ? undefined : commands[topic];
  if (known !== undefined) return `Usage: ${known}\n\n${common}\n`;
  return `Usage: berth <command> [options]   (from a checkout: npx berth <command> …)

Commands:
  ${Object.values(commands).join("\n\n  ")}

${common}

Exit codes: 0 success, 1 the call failed (the gRPC status is printed; for health: not
SERVING), 2 usage error.
`;
}

/**
 * Parses a duration: `250ms`, `5s`, `1.5s`, `2m`, or a bare number of seconds.
 *
 * @returns milliseconds, or undefined when the text is not a positive duration
 */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (m === null) return undefined;
  const n = Number(m[1]);
  const ms = m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : n * 1000;
  return ms > 0 && Number.isFinite(ms) ? Math.round(ms) : undefined;
}

function integer(
  text: string | undefined,
  flag: string,
  min: number,
  max: number,
  topic: string,
): number | undefined {
  if (text === undefined) return undefined;
  if (!/^-?\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got "${text}"`, {
      topic,
    });
  }
  return Number(text);
}

/**
 * Parses the CLI's arguments (after `node main.ts`).
 *
 * @param argv the arguments
 * @param env environment for fallbacks (BERTH_ADDRESS, BERTH_TIMEOUT)
 * @throws UsageError on anything malformed, with the command it concerns
 */
export function parseCliArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): CliCommand {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e: unknown) {
    const topic = commandIn(argv);
    throw new UsageError(parseProblem(e, argv, topic), { topic });
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  if (command === undefined) {
    if (values.help === true) return { command: "help" };
    throw new UsageError(`missing command (${COMMANDS.filter((c) => c !== "help").join(", ")})`);
  }
  if (command === "help") {
    return args[0] === undefined ? { command: "help" } : { command: "help", topic: args[0] };
  }
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(
      `unknown command "${command}" (commands: ${COMMANDS.filter((c) => c !== "help").join(", ")})`,
    );
  }
  if (values.help === true) return { command: "help", topic: command };
  const allowed = [...GLOBAL, ...(PER_COMMAND[command] ?? [])];
  for (const key of Object.keys(values)) {
    if (!allowed.includes(key)) {
      throw new UsageError(`--${key} does not apply to "${command}"`, { topic: command });
    }
  }
  const timeoutText = values.timeout ?? env.BERTH_TIMEOUT;
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (timeoutText !== undefined) {
    const t = parseDuration(timeoutText);
    if (t === undefined) {
      throw new UsageError(
        `--timeout must be a positive duration such as 500ms, 5s or 1m, got "${timeoutText}"`,
        { topic: command },
      );
    }
    timeoutMs = t;
  }
  const address = values.address ?? env.BERTH_ADDRESS ?? DEFAULT_ADDRESS;
  if (address.trim() === "")
    throw new UsageError("--address must not be empty", { topic: command });
  const global: GlobalOptions = { address, json: values.json === true, timeoutMs };
  const arity = (n: number, names: string) => {
    if (args.length !== n) {
      throw new UsageError(
        args.length < n
          ? `"${command}" needs ${names}`
          : `"${command}" takes ${names}; unexpected "${args.slice(n).join(" ")}"`,
        { topic: command },
      );
    }
  };
  switch (command) {
    case "reserve": {
      arity(2, "<pool> <units>");
      const units = integer(args[1], "<units>", 1, 1_000_000, command) as number;
      const requestId = values["request-id"];
      if (requestId !== undefined && requestId === "") {
        throw new UsageError("--request-id must not be empty", { topic: command });
      }
      return { ...global, command, pool: args[0] as string, units, requestId };
    }
    case "release":
      arity(1, "<reservation-id>");
      return { ...global, command, reservationId: args[0] as string };
    case "pool":
      arity(1, "<pool>");
      return { ...global, command, pool: args[0] as string };
    case "health":
      arity(0, "no positional arguments");
      return { ...global, command, service: values.service ?? "" };
    default: {
      arity(0, "no positional arguments");
      const from = values.from;
      const to = values.to;
      let window: { start: Timestamp; end: Timestamp } | undefined;
      if ((from === undefined) !== (to === undefined)) {
        throw new UsageError("--from and --to go together", { topic: command });
      }
      if (from !== undefined && to !== undefined) {
        const start = parseRfc3339(from);
        const end = parseRfc3339(to);
        if (start === undefined) {
          throw new UsageError(`--from must be an RFC 3339 timestamp, got "${from}"`, {
            topic: command,
          });
        }
        if (end === undefined) {
          throw new UsageError(`--to must be an RFC 3339 timestamp, got "${to}"`, {
            topic: command,
          });
        }
        window = { start, end };
      }
      if (values["all-pages"] === true && values["page-token"] !== undefined) {
        throw new UsageError("--all-pages and --page-token exclude each other", { topic: command });
      }
      return {
        ...global,
        command: "availability",
        selector: values.selector ?? "",
        window,
        minUnits: integer(values["min-units"], "--min-units", 0, 1_000_000, command) ?? 0,
        pageSize: integer(values["page-size"], "--page-size", 1, 1000, command) ?? 0,
        pageToken: values["page-token"] ?? "",
        allPages: values["all-pages"] === true,
        includeClosed: values["include-closed"] === true,
      };
    }
  }
}

/** The command word of `argv` (the first positional, skipping option values), if known. */
function commandIn(argv: readonly string[]): string | undefined {
  const byShort = new Map<string, string>(
    Object.entries(OPTIONS).flatMap(([name, o]) => ("short" in o ? [[o.short, name]] : [])),
  );
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") return argv[i + 1];
    if (!arg.startsWith("-") || arg === "-") {
      return (COMMANDS as readonly string[]).includes(arg) ? arg : undefined;
    }
    const name = arg.startsWith("--") ? arg.slice(2) : byShort.get(arg.slice(1));
    const option = name === undefined ? undefined : OPTIONS[name as keyof typeof OPTIONS];
    if (option?.type === "string") i++; // its value
  }
  return undefined;
}

/** The options `command` accepts, as `--name` (with `-x` for those with a short form). */
function optionsOf(command: string | undefined): string[] {
  const names = [...(command === undefined ? [] : (PER_COMMAND[command] ?? [])), ...GLOBAL];
  return names.map((n) => {
    const o = OPTIONS[n as keyof typeof OPTIONS];
    return "short" in o ? `-${o.short}/--${n}` : `--${n}`;
  });
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = Math.min(
        above + 1,
        (row[j - 1] as number) + 1,
        diagonal + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

/**
 * What is wrong, in our words, for an error of `node:util` parseArgs (whose own
 * messages suggest `--` tricks that do not fit this CLI).
 */
function parseProblem(e: unknown, argv: readonly string[], command: string | undefined): string {
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown } | null)?.code;
  const unknown = /^Unknown option '([^']+)'/.exec(message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown !== undefined) {
    if (/^-\d/.test(unknown)) {
      return command === "reserve"
        ? `<units> must be an integer from 1 to 1000000, got "${unknown}"`
        : `"${unknown}" is not an option, and negative numbers are not valid here`;
    }
    const name = unknown.replace(/^-+/, "").replaceAll("_", "-").toLowerCase();
    const tolerance = name.length >= 6 ? 2 : name.length >= 3 ? 1 : 0;
    const near = Object.keys(OPTIONS).find((o) => editDistance(name, o) <= tolerance);
    const hint =
      near === undefined
        ? ""
        : command === undefined || [...GLOBAL, ...(PER_COMMAND[command] ?? [])].includes(near)
          ? ` (did you mean --${near}?)`
          : ` (--${near} is not an option of "${command}")`;
    return command === undefined
      ? `unknown option "${unknown}"${hint}`
      : `unknown option "${unknown}" for "${command}"${hint}; its options: ${optionsOf(command).join(", ")}`;
  }
  const flag = /^Option '(?:-\w, )?(--[\w-]+)/.exec(message)?.[1];
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && flag !== undefined) {
    if (message.includes("argument missing")) return `${flag} needs a value`;
    if (message.includes("does not take an argument")) return `${flag} takes no value`;
    if (message.includes("ambiguous")) {
      const option = OPTIONS[flag.slice(2) as keyof typeof OPTIONS];
      const short = option !== undefined && "short" in option ? `-${option.short}` : flag;
      const i = argv.findIndex((a) => a === flag || a === short);
      const next = argv[i + 1] ?? "";
      return `${flag} needs a value, and "${next}" looks like an option (write ${flag}=${next} if it is the value)`;
    }
  }
  return message.split("\n")[0]?.replace(/\. To specify a positional argument.*$/s, "") ?? message;
}
