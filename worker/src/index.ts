/**
 * @berth/worker: the pool entity, its journal, shard ownership and the worker process
 * (WorkerService, WorkerControlService). The gossip read side and the gRPC server
 * plumbing it shares with gateways live in @berth/common.
 */

// The worker runtime: start a worker in-process, or use its pieces.
export {
  type ConnectBackoff,
  ConnectingJournal,
  type ConnectingJournalOptions,
  DEFAULT_OUTAGE_POLICY,
  type JournalHealthEvent,
  type OutagePolicy,
} from "./adapters/connecting-journal.js";
export { type GrpcError, toGrpcError } from "./adapters/grpc-errors.js";
export {
  CASSANDRA_CREDENTIALS_ENV,
  cassandraCredentialsFromEnv,
  connectCassandra,
  InvalidCassandraCredentialsError,
  InvalidJournalUrlError,
  type JournalLocation,
  openJournal,
  parseJournalUrl,
} from "./adapters/journal-url.js";
export { countersOf, poolToWire, windowToWire } from "./adapters/wire.js";
export {
  parseWorkerFlags,
  USAGE as WORKER_USAGE,
  type WorkerFlags,
} from "./adapters/worker-flags.js";
export {
  type LeaseStats,
  registerLeaseMetrics,
  registerReadinessMetric,
  WorkerMetrics,
} from "./adapters/worker-metrics.js";
export {
  type LeaveOptions,
  type LeaveResult,
  type RunningWorker,
  startWorker,
  type WorkerConfig,
} from "./adapters/worker-server.js";
// The pure pool entity, for tools that replay a journal (benchmarks, audits).
export {
  evolve,
  fromSnapshot,
  initialState,
  type PoolEvent,
  type PoolSnapshot,
  type PoolState,
  type PoolView,
  parsePoolEvent,
  poolView,
  toSnapshot,
} from "./domain/pool.js";
export type { EntityCommand, EntityOutcome } from "./entity/entity-outcome.js";
export {
  PoolEntity,
  type PoolEntitySettings,
  type PoolEntityTarget,
} from "./entity/pool-entity.js";
export { CassandraJournal, type CassandraJournalOptions } from "./journal/cassandra-journal.js";
export { CassandraUrlError, parseCassandraJournalUrl } from "./journal/cassandra-url.js";
export { FencedError, JournalUnavailableError } from "./journal/errors.js";
export type { Journal, LoadedPool, StoredEvent } from "./journal/journal.js";
export type {
  CommandOutcome,
  ExecuteResult,
  NotOwnerOutcome,
} from "./ownership/command-outcome.js";
export {
  type ShardHoldings,
  ShardOwnership,
  type ShardOwnershipOptions,
} from "./ownership/shard-ownership.js";
