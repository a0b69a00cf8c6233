// What a worker of the local cluster holds, as the worker itself says on its
// WorkerControlService.WatchShards stream, followed across the worker's restarts.
import {
  clusterClientOptions,
  type InternalTransport,
  plaintextTransport,
  WorkerControlServiceClient,
} from "@berth/common";
import { type BackoffPolicy, backoffDelayMs, type internal } from "@berth/proto";
import { type ClientReadableStream, Metadata, type StatusObject, status } from "@grpc/grpc-js";

/** Options of {@link ShardWatch}. */
export interface ShardWatchOptions {
  /** The worker's gRPC address. */
  readonly address: string;
  /** Sent with the call; the worker refuses any other. */
  readonly clusterId: string;
  /** Called after every report, and when the stream is lost. */
  readonly onChange: () => void;
  /**
   * Told when a stream ends with a status other than the worker going away
   * (UNAVAILABLE) or stopping (OK), once per run of such failures.
   */
  readonly onFailure?: (status: StatusObject) => void;
  /** The worker's internal transport; default plaintext (local mode does not use TLS). */
  readonly transport?: InternalTransport;
}

/**
 * Wait before calling again after a lost stream: 100 ms, doubling while nothing is
 * heard, up to 2 s; no jitter (one supervisor, one worker).
 */
const RETRY_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 2000, jitter: "none" };
/** How a stream ends when its worker stops or goes away: no failure worth a line. */
const EXPECTED_ENDS: readonly status[] = [status.OK, status.CANCELLED, status.UNAVAILABLE];

/**
 * Follows one worker's WatchShards stream. {@link latest} is its newest report while
 * a stream is open and undefined while none is (the worker is starting, down or
 * restarting); a lost stream is called again, waiting for the worker to be back
 * (waitForReady), until {@link close}.
 */
export class ShardWatch {
  readonly #o: ShardWatchOptions;
  readonly #client: WorkerControlServiceClient;
  #stream: ClientReadableStream<internal.WatchShardsResponse> | undefined;
  #latest: internal.WatchShardsResponse | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Streams lost since the last report. */
  #retries = 0;
  #failing = false;
  #closed = false;

  constructor(options: ShardWatchOptions) {
    this.#o = options;
    const transport = options.transport ?? plaintextTransport();
    this.#client = new WorkerControlServiceClient(options.address, transport.channelCredentials, {
      ...transport.channelOptions,
      ...clusterClientOptions(options.clusterId),
      // A restarted worker is back within seconds: reconnect soon after it is.
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
    });
    this.#call();
  }

  /** The worker's newest report on the open stream; undefined while there is none. */
  get latest(): internal.WatchShardsResponse | undefined {
    return this.#latest;
  }

  /** What the newest report says of `shard`; undefined when absent or no stream is open. */
  report(shard: number): internal.ShardReport | undefined {
    return this.#latest?.shards.find((s) => s.shard === shard);
  }

  /** Stops following (cancels the stream, closes the channel). Idempotent. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#stream?.cancel();
    this.#client.close();
  }

  #call(): void {
    if (this.#closed) return;
    const stream = this.#client.watchShards({}, new Metadata({ waitForReady: true }));
    this.#stream = stream;
    stream.on("data", (m: internal.WatchShardsResponse) => {
      this.#latest = m;
      this.#failing = false;
      this.#retries = 0;
      this.#o.onChange();
    });
    // A non-OK status comes as an error too; the status event handles both.
    stream.on("error", () => undefined);
    stream.on("status", (s: StatusObject) => {
      if (this.#stream !== stream) return;
      this.#stream = undefined;
      this.#latest = undefined;
      if (this.#closed) return;
      if (!EXPECTED_ENDS.includes(s.code) && !this.#failing) {
        this.#failing = true;
        this.#o.onFailure?.(s);
      }
      this.#o.onChange();
      this.#retries++;
      this.#timer = setTimeout(() => this.#call(), backoffDelayMs(this.#retries, RETRY_BACKOFF));
    });
  }
}
