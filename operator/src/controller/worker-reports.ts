// What each worker says it holds, through WorkerControlService.WatchShards: one
// long-lived stream per member, reopened with backoff while the member is listed.
// Planning reads only reports from a shard's current owner at its current epoch, so
// a stale report (an old owner, an old epoch) can never move a shard.
import {
  clusterClientOptions,
  type InternalTransport,
  plaintextTransport,
  WorkerControlServiceClient,
} from "@berth/common";
import { backoffDelayMs, internal } from "@berth/proto";
import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { ShardReport } from "../planning/hand-off.js";

const { ShardReportState } = internal;

/** Options of {@link WorkerReports}. */
export interface WorkerReportsOptions {
  /** Sent with every call; workers refuse other clusters. */
  readonly clusterId: string;
  readonly logger: Logger;
  /** First and longest delay before reopening a stream that ended (doubling, equal jitter). Default 100 ms / 2 s. */
  readonly reconnectDelayMs?: { readonly initial: number; readonly max: number };
  /** grpc-js channel options; keepalive defaults detect a frozen worker within ~4 s. */
  readonly channelOptions?: grpc.ChannelOptions;
  /** Credentials of the worker clients (mutual TLS with `--internal-tls-dir`); default plaintext. */
  readonly transport?: InternalTransport;
}

interface Watch {
  readonly address: string;
  readonly client: WorkerControlServiceClient;
  call: grpc.ClientReadableStream<internal.WatchShardsResponse> | undefined;
  latest: internal.WatchShardsResponse | undefined;
  failures: number;
  timer: NodeJS.Timeout | undefined;
}

/** Keeps a WatchShards stream open to every member it is told to track. */
export class WorkerReports {
  readonly #o: WorkerReportsOptions;
  readonly #log: Logger;
  readonly #watches = new Map<string, Watch>();
  readonly #listeners = new Set<() => void>();
  #closed = false;

  constructor(options: WorkerReportsOptions) {
    this.#o = options;
    this.#log = options.logger.child({ module: "worker-reports" });
  }

  /**
   * Watches exactly these members: opens streams to new ones (or to a member whose
   * address changed) and closes the rest.
   */
  track(members: readonly internal.Member[]): void {
    if (this.#closed) return;
    const wanted = new Map(members.filter((m) => m.address !== "").map((m) => [m.id, m.address]));
    for (const [id, w] of this.#watches) {
      if (wanted.get(id) !== w.address) this.#drop(id, w);
    }
    for (const [id, address] of wanted) {
      if (!this.#watches.has(id)) this.#open(id, address);
    }
  }

  /** Registers a listener called after any report arrives or is lost. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The last report of a member whose stream is open, if any. */
  latest(id: string): internal.WatchShardsResponse | undefined {
    return this.#watches.get(id)?.latest;
  }

  /**
   * Per shard, what its owner in `map` reports about it at the map's epoch; shards
   * it reports as recovering (or not at all) are absent.
   */
  reportsFor(map: internal.ShardMap): Map<number, ShardReport> {
    const out = new Map<number, ShardReport>();
    const byMember = new Map<string, Map<number, internal.ShardReport>>();
    for (const [id, w] of this.#watches) {
      if (w.latest === undefined) continue;
      byMember.set(id, new Map(w.latest.shards.map((s) => [s.shard, s])));
    }
    for (const s of map.shards) {
      const r = byMember.get(s.owner)?.get(s.shard);
      if (r === undefined || r.epoch !== s.epoch) continue;
      if (r.state === ShardReportState.SHARD_REPORT_STATE_SERVING) {
        out.set(s.shard, { owner: s.owner, epoch: s.epoch, state: "serving" });
      } else if (r.state === ShardReportState.SHARD_REPORT_STATE_DRAINED) {
        out.set(s.shard, { owner: s.owner, epoch: s.epoch, state: "drained" });
      }
    }
    return out;
  }

  /** Members whose last report says they are leaving. */
  leaving(): Set<string> {
    const out = new Set<string>();
    for (const [id, w] of this.#watches) if (w.latest?.leaving === true) out.add(id);
    return out;
  }

  /** Number of members with an open stream that has reported at least once. */
  get connected(): number {
    let n = 0;
    for (const w of this.#watches.values()) if (w.latest !== undefined) n++;
    return n;
  }

  /** Closes every stream and client. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const [id, w] of this.#watches) this.#drop(id, w);
    this.#listeners.clear();
  }

  #open(id: string, address: string): void {
    const transport = this.#o.transport ?? plaintextTransport();
    const client = new WorkerControlServiceClient(address, transport.channelCredentials, {
      ...transport.channelOptions,
      "grpc.keepalive_time_ms": 1_000,
      "grpc.keepalive_timeout_ms": 3_000,
      "grpc.keepalive_permit_without_calls": 1,
      ...this.#o.channelOptions,
      ...clusterClientOptions(this.#o.clusterId),
    });
    const w: Watch = {
      address,
      client,
      call: undefined,
      latest: undefined,
      failures: 0,
      timer: undefined,
    };
    this.#watches.set(id, w);
    this.#connect(id, w);
  }

  #connect(id: string, w: Watch): void {
    w.timer = undefined;
    const call = w.client.watchShards({});
    w.call = call;
    call.on("data", (report: internal.WatchShardsResponse) => {
      if (this.#watches.get(id) !== w) return;
      w.failures = 0;
      if (report.memberId !== id) {
        this.#log.warn(
          { member: id, address: w.address, reported: report.memberId },
          "a worker reports under another member id; ignoring it",
        );
        return;
      }
      w.latest = report;
      this.#emit();
    });
    const ended = (error: grpc.ServiceError | undefined) => {
      if (this.#watches.get(id) !== w || w.call !== call) return;
      w.call = undefined;
      const had = w.latest !== undefined;
      w.latest = undefined;
      w.failures++;
      const { initial, max } = this.#o.reconnectDelayMs ?? { initial: 100, max: 2_000 };
      // Equal jitter: the streams of workers that went away together reopen spread out.
      const delayMs = backoffDelayMs(w.failures, {
        initialMs: initial,
        maxMs: max,
        jitter: "equal",
      });
      // One line per outage, not per attempt: a dead worker is retried every ~2 s.
      if (had || w.failures === 1) {
        this.#log.info(
          { member: id, address: w.address, error: error?.details ?? "stream ended" },
          "lost the shard report stream of a worker; reopening",
        );
      }
      w.timer = setTimeout(() => this.#connect(id, w), delayMs);
      if (had) this.#emit();
    };
    call.on("error", (e: grpc.ServiceError) => ended(e));
    call.on("end", () => ended(undefined));
  }

  #drop(id: string, w: Watch): void {
    this.#watches.delete(id);
    if (w.timer !== undefined) clearTimeout(w.timer);
    w.call?.cancel();
    w.client.close();
    if (w.latest !== undefined && !this.#closed) this.#emit();
  }

  #emit(): void {
    for (const l of [...this.#listeners]) l();
  }
}
