// WorkerControlService: what this worker holds, streamed to whoever publishes its
// ShardMap (the operator, or the local supervisor), so that nobody reads it from logs.
import type { WorkerControlServiceServer } from "@berth/common";
import type { internal } from "@berth/proto";
import type { ServerWritableStream } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { ShardOwnership } from "../ownership/shard-ownership.js";

/** Options of {@link WorkerControl}. */
export interface WorkerControlOptions {
  /** This worker's member id in the ShardMap. */
  readonly memberId: string;
  readonly ownership: ShardOwnership;
  readonly logger: Logger;
}

type WatchCall = ServerWritableStream<internal.WatchShardsRequest, internal.WatchShardsResponse>;

/** One open WatchShards stream. */
interface Watcher {
  readonly call: WatchCall;
  /** Key of the last snapshot written, so an unchanged one is not sent again. */
  sentKey: string | undefined;
  /** A flush is scheduled for the end of this event-loop turn. */
  scheduled: boolean;
  /** A written snapshot has not been taken by the transport yet. */
  inFlight: boolean;
}

/**
 * Serves WorkerControlService.WatchShards and holds the worker's `leaving` flag.
 *
 * Every watcher gets a snapshot at once, then the newest one after each change
 * ({@link ShardOwnership.onChange}, {@link leave}): changes within one event-loop turn
 * make one message, and a snapshot equal to the last one sent is not sent again. A
 * watcher gets at most one message in flight: while the transport has not taken it
 * (a watcher that does not read), later changes only mark the watcher stale, and once
 * the transport takes it the newest snapshot follows. So a slow watcher costs one
 * message of memory, never a queue, and always ends up with the final state.
 */
export class WorkerControl {
  readonly #o: WorkerControlOptions;
  readonly #log: Logger;
  readonly #watchers = new Set<Watcher>();
  readonly #stopListening: () => void;
  #leaving = false;
  #closed = false;

  constructor(options: WorkerControlOptions) {
    this.#o = options;
    this.#log = options.logger.child({ module: "control" });
    this.#stopListening = options.ownership.onChange(() => this.#changed());
  }

  /** Marks this worker as leaving; every watcher hears it at once. Idempotent. */
  leave(): void {
    if (this.#leaving) return;
    this.#leaving = true;
    this.#changed();
  }

  /** What a watcher would be sent now. */
  snapshot(): internal.WatchShardsResponse {
    const { mapRevision, shards } = this.#o.ownership.report();
    return {
      memberId: this.#o.memberId,
      mapRevision,
      shards: [...shards],
      leaving: this.#leaving,
    };
  }

  /** The WorkerControlService handlers, for `server.addService`. */
  handlers(): WorkerControlServiceServer {
    return { watchShards: (call) => this.#watch(call) };
  }

  /**
   * Sends every watcher the newest snapshot (if it has not had it) and ends its stream
   * with OK; later calls are answered likewise at once. Call it once the ownership is
   * closed, so the last message says what the worker left holding. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopListening();
    for (const w of [...this.#watchers]) this.#end(w);
  }

  #watch(call: WatchCall): void {
    const w: Watcher = { call, sentKey: undefined, scheduled: false, inFlight: false };
    if (this.#closed) {
      this.#write(w);
      call.end();
      return;
    }
    this.#watchers.add(w);
    call.on("cancelled", () => this.#watchers.delete(w));
    this.#log.debug(
      { peer: call.getPeer(), watchers: this.#watchers.size },
      "shard watcher joined",
    );
    this.#flush(w);
  }

  #changed(): void {
    for (const w of this.#watchers) {
      if (w.scheduled) continue;
      w.scheduled = true;
      setImmediate(() => {
        w.scheduled = false;
        this.#flush(w);
      });
    }
  }

  /** Writes the newest snapshot unless it was sent already or one is still in flight. */
  #flush(w: Watcher): void {
    if (w.inFlight || !this.#watchers.has(w)) return;
    this.#write(w, () => {
      w.inFlight = false;
      this.#flush(w);
    });
  }

  #write(w: Watcher, written?: () => void): void {
    const message = this.snapshot();
    const key = keyOf(message);
    if (key === w.sentKey) return;
    w.sentKey = key;
    w.inFlight = written !== undefined;
    w.call.write(message, written);
  }

  #end(w: Watcher): void {
    this.#watchers.delete(w);
    // The newest snapshot even if one is in flight: the stream ends right after, so
    // this adds one message at most.
    this.#write(w);
    w.call.end();
  }
}

/** A string equal for equal snapshots. */
function keyOf(m: internal.WatchShardsResponse): string {
  const shards = m.shards.map((s) => `${s.shard}:${s.epoch}:${s.state}`).join(",");
  return `${m.mapRevision}|${m.leaving ? 1 : 0}|${shards}`;
}
