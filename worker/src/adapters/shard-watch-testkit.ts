// For tests: a WatchShards client that records what it hears, and a ShardMap publisher
// that hands a leaving worker's shards to another member the way the operator does
// (DRAINING at the same epoch, then, once drained, the new owner at epoch + 1).
import { clusterClientOptions, WorkerControlServiceClient } from "@berth/common";
import { internal } from "@berth/proto";
import { credentials, Metadata, type StatusObject } from "@grpc/grpc-js";

const { ShardState, ShardReportState } = internal;

/** Longest wait of {@link RecordedWatch.until} by default: generous, for a busy machine. */
const DEFAULT_WAIT_MS = 30_000;

/** One WatchShards stream and every message it carried, in order. */
export class RecordedWatch {
  readonly messages: internal.WatchShardsResponse[] = [];
  /** Resolves with the stream's final status (OK when the worker ended it). */
  readonly ended: Promise<StatusObject>;
  readonly #client: WorkerControlServiceClient;
  readonly #stream: ReturnType<WorkerControlServiceClient["watchShards"]>;
  readonly #listeners = new Set<() => void>();
  #status: StatusObject | undefined;

  /**
   * @param address the worker's gRPC address
   * @param clusterId sent with the call ("" for none)
   */
  constructor(address: string, clusterId = "") {
    this.#client = new WorkerControlServiceClient(
      address,
      credentials.createInsecure(),
      clusterClientOptions(clusterId),
    );
    this.#stream = this.#client.watchShards({}, new Metadata());
    this.#stream.on("data", (m: internal.WatchShardsResponse) => {
      this.messages.push(m);
      this.#notify();
    });
    // A non-OK status also comes as an error; the status event carries it either way.
    this.#stream.on("error", () => undefined);
    this.ended = new Promise<StatusObject>((resolve) => {
      this.#stream.on("status", (s: StatusObject) => {
        this.#status = s;
        resolve(s);
        this.#notify();
      });
    });
  }

  /** The last message so far. */
  get latest(): internal.WatchShardsResponse | undefined {
    return this.messages.at(-1);
  }

  /** Calls `listener` after every message and when the stream ends. */
  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  /**
   * Resolves with the index of the first message (from the start of the stream) that
   * satisfies `predicate`.
   *
   * @throws Error naming `what` and the last message when the stream ends first or
   *   `timeoutMs` passes
   */
  until(
    what: string,
    predicate: (m: internal.WatchShardsResponse) => boolean,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        const last = this.latest === undefined ? "none" : JSON.stringify(this.latest);
        reject(new Error(`${why} waiting until ${what}; last message: ${last}`));
      };
      const check = () => {
        const i = this.messages.findIndex(predicate);
        if (i >= 0) {
          clearTimeout(timer);
          this.#listeners.delete(check);
          resolve(i);
        } else if (this.#status !== undefined) {
          fail(`the stream ended (${this.#status.code} ${this.#status.details})`);
        }
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      this.#listeners.add(check);
      check();
    });
  }

  /** Stops reading (the transport's flow control then holds the worker back). */
  pause(): void {
    this.#stream.pause();
  }

  /** Reads again. */
  resume(): void {
    this.#stream.resume();
  }

  /** Cancels the call (if still open) and closes the channel. */
  close(): void {
    this.#stream.cancel();
    this.#client.close();
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }
}

/** The report's state of `shard`, with its epoch; undefined when the shard is absent. */
export function reported(
  m: internal.WatchShardsResponse | undefined,
  shard: number,
): { state: internal.ShardReportState; epoch: number } | undefined {
  const r = m?.shards.find((s) => s.shard === shard);
  return r === undefined ? undefined : { state: r.state, epoch: r.epoch };
}

/**
 * One step of the hand-off of a leaving worker's shards to `heir`: each ACTIVE shard
 * of `report.memberId` becomes DRAINING (same owner, same epoch); each DRAINING one it
 * reports DRAINED at the map's epoch goes to `heir` at epoch + 1, ACTIVE.
 *
 * @returns the next map (revision + 1), or undefined when nothing changes (also when
 *   the worker is not leaving)
 */
export function handOffStep(
  map: internal.ShardMap,
  report: internal.WatchShardsResponse,
  heir: string,
): internal.ShardMap | undefined {
  if (!report.leaving) return undefined;
  const leaver = report.memberId;
  let changed = false;
  const shards = map.shards.map((a) => {
    if (a.owner !== leaver) return a;
    if (a.state === ShardState.SHARD_STATE_ACTIVE) {
      changed = true;
      return { ...a, state: ShardState.SHARD_STATE_DRAINING };
    }
    const r = reported(report, a.shard);
    if (
      a.state === ShardState.SHARD_STATE_DRAINING &&
      r?.state === ShardReportState.SHARD_REPORT_STATE_DRAINED &&
      r.epoch === a.epoch
    ) {
      changed = true;
      return { ...a, owner: heir, epoch: a.epoch + 1, state: ShardState.SHARD_STATE_ACTIVE };
    }
    return a;
  });
  return changed ? { ...map, revision: map.revision + 1, shards } : undefined;
}

/**
 * Follows a leaving worker's WatchShards (from its latest message on) and publishes
 * {@link handOffStep}'s maps, one at a time, until every shard of the worker is with
 * `heir`.
 */
export class HandOffPublisher {
  #busy = Promise.resolve();

  /**
   * @param watch the leaving worker's stream
   * @param heir who gets the shards
   * @param current the map now published
   * @param publish publishes a map (e.g. StaticShardMapSource.set, writeShardMapFile)
   */
  constructor(
    watch: RecordedWatch,
    heir: string,
    current: () => internal.ShardMap,
    publish: (map: internal.ShardMap) => unknown,
  ) {
    const step = () => {
      this.#busy = this.#busy.then(async () => {
        const report = watch.latest;
        const next = report === undefined ? undefined : handOffStep(current(), report, heir);
        if (next !== undefined) await publish(next);
      });
    };
    watch.onChange(step);
    step();
  }
}
