// The worker process: parses flags, opens the journal, follows the shard-map file,
// serves until SIGTERM/SIGINT, then drains and exits 0.
import { FileShardMapSource } from "@berth/proto";
import { InvalidJournalUrlError, openJournal } from "./adapters/journal-url.js";
import { createLogger } from "./adapters/observability.js";
import { parseWorkerFlags, USAGE, UsageError, type WorkerFlags } from "./adapters/worker-flags.js";
import { startWorker } from "./adapters/worker-server.js";

async function main(): Promise<number> {
  let flags: WorkerFlags | "help";
  try {
    flags = parseWorkerFlags(process.argv.slice(2));
  } catch (e: unknown) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`worker: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (flags === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = createLogger("worker", { worker: flags.id });
  let journal: Awaited<ReturnType<typeof openJournal>>;
  try {
    journal = await openJournal(flags.journal);
  } catch (e: unknown) {
    if (e instanceof InvalidJournalUrlError) {
      process.stderr.write(`worker: --journal: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    log.fatal({ err: e, journal: flags.journal }, "cannot open the journal");
    return 1;
  }
  const source = new FileShardMapSource(flags.shardMapFile);
  const worker = await startWorker({
    id: flags.id,
    grpc: flags.grpc,
    http: flags.http,
    journal,
    shardMapSource: source,
    gossipPeers: flags.gossipPeers,
    snapshotEvery: flags.snapshotEvery,
    logger: log,
  });

  const stopped = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  const first = await Promise.race([
    worker.whenReady().then(
      () => "ready",
      () => "closed",
    ),
    stopped,
  ]);
  if (first === "ready") {
    log.info({ grpc: worker.address, http: worker.httpAddress }, "worker listening");
  }
  const signal = first === "ready" ? await stopped : first;
  log.info({ signal }, "stopping: draining in-flight calls");
  await worker.close();
  source.close();
  await journal.close();
  log.info("worker exited cleanly");
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Everything is closed; should a stray handle keep the loop alive, exit anyway.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (e: unknown) => {
    process.stderr.write(
      `worker: fatal: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exitCode = 1;
  },
);
