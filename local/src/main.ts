// `npm start`: a local Berth cluster on this machine. See LOCAL_USAGE in options.ts.
import { UsageError } from "@berth/common";
import { ShardCountMismatchError } from "@berth/operator";
import { DataDirLockedError, InvalidClusterIdFileError } from "./data-dir.js";
import {
  type LocalCluster,
  LocalStartAbortedError,
  REPO_ROOT,
  startLocalCluster,
} from "./local-cluster.js";
import { ProcessStartError } from "./managed-process.js";
import { ManifestError } from "./manifests/index.js";
import { LOCAL_USAGE, parseLocalArgs } from "./options.js";
import { PortUnavailableError } from "./ports.js";

async function main(): Promise<number> {
  let args: ReturnType<typeof parseLocalArgs>;
  try {
    args = parseLocalArgs(process.argv.slice(2), process.env, REPO_ROOT, process.cwd());
  } catch (e: unknown) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`berth: ${e.message}\n\n${LOCAL_USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(LOCAL_USAGE);
    return 0;
  }
  const out = (line: string) => process.stdout.write(`${line}\n`);
  // A signal at any phase stops: while starting, it aborts the start (which stops what
  // has started); once running, it stops the cluster.
  const stopRequested = Promise.withResolvers<NodeJS.Signals>();
  const abort = new AbortController();
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      process.stderr.write(`berth: ${signal} again; exiting now (children are killed)\n`);
      process.exit(130);
    }
    signalled = true;
    process.stderr.write(`\nberth: ${signal} received; stopping (press Ctrl-C again to force)\n`);
    abort.abort();
    stopRequested.resolve(signal);
  };
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, onSignal);
  let cluster: LocalCluster;
  try {
    cluster = await startLocalCluster({
      workers: args.workers,
      dataDir: args.dataDir,
      pools: args.pools,
      port: args.port,
      ...(args.controlPort === undefined ? {} : { controlPort: args.controlPort }),
      shards: args.shards,
      journal: args.journal,
      logFormat: args.logFormat,
      logColor: args.logFormat === "pretty" && process.stdout.isTTY && !process.env.NO_COLOR,
      logOutput: out,
      watch: args.watch,
      signal: abort.signal,
    });
  } catch (e: unknown) {
    if (e instanceof ManifestError) {
      process.stderr.write(`berth: invalid manifests:\n${e.message}\n`);
      return 1;
    }
    if (e instanceof LocalStartAbortedError) {
      process.stderr.write("berth: stopped before the cluster was up\n");
      return 130;
    }
    if (
      e instanceof ProcessStartError ||
      e instanceof RangeError ||
      e instanceof DataDirLockedError ||
      e instanceof PortUnavailableError ||
      e instanceof InvalidClusterIdFileError ||
      e instanceof ShardCountMismatchError
    ) {
      process.stderr.write(`berth: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  if (!signalled) process.stdout.write(cluster.banner());
  await stopRequested.promise;
  await cluster.stop();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`berth: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
