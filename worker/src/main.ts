// The worker process: parses flags, opens the journal, follows the ShardMap (a file in
// local mode; the ShardMap resource in Kubernetes mode, where it also holds its Lease),
// serves until SIGTERM/SIGINT, then (with --hand-off-timeout-ms) waits for its shards
// to be moved away, drains, gives up its Lease and exits 0.
import { setTimeout as sleep } from "node:timers/promises";
import {
  createLogger,
  FileShardMapSource,
  InternalTlsError,
  type InternalTransport,
  loadInternalTls,
  setServerV8Flags,
  UsageError,
  writeAddressFile,
} from "@berth/common";
import type { PodControllerOwner, WorkerLease } from "@berth/kubernetes";
import type { ShardMapSource } from "@berth/proto";
import { ConnectingJournal } from "./adapters/connecting-journal.js";
import {
  cassandraCredentialsFromEnv,
  InvalidCassandraCredentialsError,
  InvalidJournalUrlError,
  openJournal,
} from "./adapters/journal-url.js";
import { parseWorkerFlags, USAGE, type WorkerFlags } from "./adapters/worker-flags.js";
import { registerLeaseMetrics } from "./adapters/worker-metrics.js";
import { startWorker } from "./adapters/worker-server.js";
import { setIdempotencyRetentionMs } from "./domain/pool.js";

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
  setServerV8Flags();
  const log = createLogger("worker", { worker: flags.id });
  let transport: InternalTransport | undefined;
  if (flags.internalTls !== undefined) {
    try {
      transport = loadInternalTls({ ...flags.internalTls, logger: log.child({ module: "tls" }) });
    } catch (e: unknown) {
      if (!(e instanceof InternalTlsError)) throw e;
      process.stderr.write(`worker: --internal-tls-dir: ${e.message}\n`);
      return 2;
    }
  }
  let cassandraCredentials: ReturnType<typeof cassandraCredentialsFromEnv>;
  try {
    cassandraCredentials = cassandraCredentialsFromEnv(process.env);
  } catch (e: unknown) {
    if (!(e instanceof InvalidCassandraCredentialsError)) throw e;
    process.stderr.write(`worker: ${e.message}\n`);
    return 2;
  }
  let journal: Awaited<ReturnType<typeof openJournal>>;
  try {
    journal = await openJournal(flags.journal, {
      ...(cassandraCredentials === undefined ? {} : { cassandraCredentials }),
      onAttemptFailed: (e, attempt, retryInMs) =>
        log.warn(
          {
            event: "journal.attempt_failed",
            attempt,
            retryInMs,
            reason: e instanceof Error ? e.message : String(e),
          },
          "journal unavailable; not ready, retrying",
        ),
      onConnected: (attempts) =>
        log.info({ event: "journal.connected", attempts }, "journal connected"),
      onHealthChange: (e) => {
        if (e.state === "down") {
          log.warn(
            { event: "journal.down", reason: e.reason, failures: e.failures },
            "journal unreachable; not ready, answering JOURNAL_UNAVAILABLE until it answers again",
          );
        } else if (e.state === "still_down") {
          log.warn(
            {
              event: "journal.still_down",
              reason: e.reason,
              failures: e.failures,
              outageMs: e.outageMs,
            },
            "journal still unreachable",
          );
        } else {
          log.info(
            { event: "journal.up", failures: e.failures, outageMs: e.outageMs },
            "journal reachable again; ready",
          );
        }
      },
    });
  } catch (e: unknown) {
    if (e instanceof InvalidJournalUrlError) {
      process.stderr.write(`worker: --journal: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    log.fatal({ err: e, journal: flags.journal }, "cannot open the journal");
    return 1;
  }
  const k8s = flags.kubernetes;
  let source: ShardMapSource & { close(): void };
  let lease: WorkerLease | undefined;
  let leaseOwner: PodControllerOwner | undefined;
  let closeKubeConfig: () => Promise<void> = async () => {};
  if (k8s === undefined) {
    source = new FileShardMapSource(flags.shardMapFile as string);
  } else {
    // Loaded only in Kubernetes mode: the client library takes about a second to load.
    const { loadKubeConfig, PodControllerOwner, ShardMapResourceSource, WorkerLease } =
      await import("@berth/kubernetes");
    const { CoordinationV1Api, CoreV1Api } = await import("@kubernetes/client-node");
    const kubeConfig = loadKubeConfig(k8s.kubeconfig);
    closeKubeConfig = () => kubeConfig.close();
    const resource = new ShardMapResourceSource({
      kubeConfig,
      namespace: k8s.namespace,
      name: k8s.shardMap,
      logger: log.child({ module: "shard-map" }),
    });
    resource.start();
    source = resource;
    // Membership: the operator counts this worker live while it sees renewals. The
    // Lease is not what keeps a stale owner from writing — the journal fence is — so a
    // worker that cannot reach kube-apiserver keeps serving the map it has.
    // With --lease-owner-pod the pod's StatefulSet owns the Lease (once the pod could be
    // read; retried in the background), so `helm uninstall` deletes it.
    if (k8s.leaseOwnerPod !== undefined) {
      leaseOwner = new PodControllerOwner({
        api: kubeConfig.makeApiClient(CoreV1Api),
        namespace: k8s.namespace,
        pod: k8s.leaseOwnerPod,
        logger: log.child({ module: "lease-owner" }),
      });
      leaseOwner.start();
    }
    lease = new WorkerLease({
      api: kubeConfig.makeApiClient(CoordinationV1Api),
      namespace: k8s.namespace,
      name: flags.id,
      address: k8s.advertise,
      leaseDurationMs: k8s.leaseDurationMs,
      renewIntervalMs: k8s.leaseRenewMs,
      logger: log.child({ module: "lease" }),
      ...(leaseOwner === undefined ? {} : { owner: leaseOwner }),
    });
  }
  setIdempotencyRetentionMs(flags.idempotencyRetentionMs);
  const worker = await startWorker({
    id: flags.id,
    clusterId: flags.clusterId,
    grpc: flags.grpc,
    http: flags.http,
    journal,
    shardMapSource: source,
    gossipPeers: flags.gossipPeers,
    snapshotEvery: flags.snapshotEvery,
    ...(transport === undefined ? {} : { transport }),
    logger: log,
  });
  if (flags.addressFile !== undefined) {
    // Every listener is bound (readiness comes later): a supervisor that gave port 0
    // learns the ports here, then probes /readyz at the http address.
    try {
      await writeAddressFile(flags.addressFile, {
        grpc: worker.address,
        http: worker.httpAddress as string,
      });
    } catch (e: unknown) {
      log.fatal({ err: e, file: flags.addressFile }, "cannot write the address file");
      await worker.close();
      leaseOwner?.stop();
      transport?.close();
      source.close();
      await closeKubeConfig();
      await journal.close();
      return 1;
    }
  }
  if (lease !== undefined) {
    const held = lease;
    registerLeaseMetrics(worker.registry, () => held.stats());
  }
  // Only once it serves: the operator may assign shards as soon as it sees the Lease.
  lease?.start();

  let exitCode = 0;
  const stopped = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
    if (journal instanceof ConnectingJournal) {
      // Unreachable is retried forever; a fatal error (e.g. a keyspace migrated by a
      // newer build) ends the worker.
      journal.whenConnected().catch((e: unknown) => {
        log.fatal({ err: e, journal: flags.journal }, "cannot open the journal");
        exitCode = 1;
        resolve("journal failed");
      });
    }
  });
  const first = await Promise.race([
    worker.whenReady().then(
      () => "ready",
      () => "closed",
    ),
    stopped,
  ]);
  if (first === "ready") {
    log.info(
      { event: "worker.listening", grpc: worker.address, http: worker.httpAddress },
      "worker listening",
    );
  }
  const signal = first === "ready" ? await stopped : first;
  if (flags.handOffTimeoutMs > 0 && (signal === "SIGTERM" || signal === "SIGINT")) {
    await worker.leave({ timeoutMs: flags.handOffTimeoutMs });
  }
  // Give up the Lease before the last calls drain: the operator then forgets this worker
  // at once (and takes over anything a timed-out leave left, fenced at epoch + 1)
  // instead of handing it shards again when its report stream ends.
  await lease?.stop({ release: true });
  leaseOwner?.stop();
  log.info({ event: "worker.stopping", signal }, "stopping: draining in-flight calls");
  await worker.close();
  transport?.close();
  source.close();
  await closeKubeConfig();
  // Bounded: a driver whose connections were cut may never finish shutting down.
  const journalClosed = await Promise.race([
    journal.close().then(
      () => true,
      (e: unknown) => {
        log.warn({ err: e }, "closing the journal failed");
        return true;
      },
    ),
    sleep(JOURNAL_CLOSE_TIMEOUT_MS, false, { ref: false }),
  ]);
  if (!journalClosed) {
    log.warn({ timeoutMs: JOURNAL_CLOSE_TIMEOUT_MS }, "the journal did not close in time");
  }
  log.info(
    { event: exitCode === 0 ? "worker.exited_cleanly" : "worker.exited", exitCode },
    exitCode === 0 ? "worker exited cleanly" : "worker exited",
  );
  return exitCode;
}

const JOURNAL_CLOSE_TIMEOUT_MS = 5000;
const FORCED_EXIT_AFTER_MS = 2000;

main().then(
  (code) => {
    process.exitCode = code;
    // Everything is closed; should a stray handle keep the loop alive (cassandra-driver
    // 4.10 can keep reconnecting a pool after its connections were cut), exit anyway.
    setTimeout(() => {
      process.stdout.write(
        `${JSON.stringify({ level: 40, time: Date.now(), event: "worker.forced_exit", msg: "a handle kept the process alive after shutdown; forcing exit", code })}\n`,
      );
      process.exit(code);
    }, FORCED_EXIT_AFTER_MS).unref();
  },
  (e: unknown) => {
    process.stderr.write(
      `worker: fatal: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exitCode = 1;
  },
);
