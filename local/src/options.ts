// Command line and environment of `npm start`. Pure.
import { isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";
import { UsageError } from "@berth/common";
import type { LogFormat } from "./log-format.js";
import { DEFAULT_GATEWAY_PORT } from "./ports.js";

/** What `npm start` was asked to do. */
export interface LocalCommandLine {
  readonly help: boolean;
  readonly workers: number;
  readonly dataDir: string;
  readonly pools: readonly string[];
  readonly port: number;
  readonly controlPort: number | undefined;
  readonly shards: number;
  readonly journal: string;
  readonly logFormat: LogFormat;
  readonly watch: boolean;
}

/** `npm start -- --help`. */
export const LOCAL_USAGE = `Usage: npm start -- [options]

Starts a Berth cluster on this machine: N workers and a gateway as child processes,
a SQLite journal and a ShardMap file in the data directory, pools from manifests.

Options (environment fallback in brackets):
  --workers N           worker processes (BERTH_WORKERS, default 3)
  --data-dir DIR        journal, shard map and logs (BERTH_DATA_DIR, default <repo>/.berth)
  --pools PATH          CapacityPool manifests: a YAML file or a directory of *.yaml;
                        repeatable (BERTH_POOLS, ':'-separated, default examples/pools.yaml)
  --port N              gateway gRPC port; the others derive from it: gossip N+9,
                        workers N+10+i, HTTP 9100+(N-50051) and up, control 9099+(N-50051).
                        0: every process binds a free port and reports it (a restart
                        keeps it); the banner shows them (BERTH_PORT, default 50051)
  --control-port N      control HTTP server (BERTH_CONTROL_PORT, default derived)
  --shards N            shard count, fixed once a data dir is used (BERTH_SHARDS, default 256)
  --journal KIND|URL    sqlite (default: <data-dir>/journal.db), or a journal URL passed
                        to the workers as is, e.g. sqlite:///abs/path.db (BERTH_JOURNAL)
  --log-format F        pretty or json (BERTH_LOG_FORMAT, default pretty)
  --no-watch            do not re-apply manifests when they change
  -h, --help            show this help

Ctrl-C stops the gateway and the workers gracefully.
`;

function int(text: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}

/**
 * Parses `npm start`'s arguments, with environment fallbacks.
 *
 * @param argv arguments after the script
 * @param env the environment (BERTH_* fallbacks)
 * @param repoRoot where default paths live
 * @param cwd what relative paths are relative to
 * @throws UsageError on malformed input
 */
export function parseLocalArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  repoRoot: string,
  cwd: string,
): LocalCommandLine {
  let values: ReturnType<typeof parse>["values"];
  let positionals: string[];
  const parse = (args: string[]) =>
    parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      allowNegative: true,
      options: {
        workers: { type: "string" },
        "data-dir": { type: "string" },
        pools: { type: "string", multiple: true },
        port: { type: "string" },
        "control-port": { type: "string" },
        shards: { type: "string" },
        journal: { type: "string" },
        "log-format": { type: "string" },
        watch: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  try {
    ({ values, positionals } = parse([...argv]));
  } catch (e: unknown) {
    throw new UsageError(
      (e instanceof Error ? e.message : String(e)).replace(/\. To specify a positional.*$/s, ""),
    );
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}" (pools go after --pools)`);
  }
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  const workers = int(values.workers ?? env.BERTH_WORKERS ?? "3", "--workers", 1, 64);
  const port = int(
    values.port ?? env.BERTH_PORT ?? String(DEFAULT_GATEWAY_PORT),
    "--port",
    0,
    65535,
  );
  const controlText = values["control-port"] ?? env.BERTH_CONTROL_PORT;
  const shards = int(values.shards ?? env.BERTH_SHARDS ?? "256", "--shards", 1, 65536);
  const logFormat = values["log-format"] ?? env.BERTH_LOG_FORMAT ?? "pretty";
  if (logFormat !== "pretty" && logFormat !== "json") {
    throw new UsageError(`--log-format must be pretty or json, got "${logFormat}"`);
  }
  const journal = values.journal ?? env.BERTH_JOURNAL ?? "sqlite";
  if (journal !== "sqlite" && !/^[a-z][a-z0-9+.-]*:\/\//.test(journal)) {
    throw new UsageError(
      `--journal must be sqlite or a journal URL such as sqlite:///abs/path/journal.db, got "${journal}"`,
    );
  }
  const envPools = env.BERTH_POOLS?.split(":").filter((p) => p !== "");
  const pools = values.pools ?? (envPools?.length ? envPools : undefined);
  return {
    help: values.help === true,
    workers,
    dataDir: abs(values["data-dir"] ?? env.BERTH_DATA_DIR ?? resolve(repoRoot, ".berth")),
    // Kept as written: error messages name the files the way the user did.
    pools: pools ?? [resolve(repoRoot, "examples/pools.yaml")],
    port,
    controlPort:
      controlText === undefined ? undefined : int(controlText, "--control-port", 0, 65535),
    shards,
    journal,
    logFormat,
    watch: values.watch ?? true,
  };
}
