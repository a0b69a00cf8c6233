// Manual shard moves of the local cluster (the control endpoint's), one at a time,
// the way the operator hands a shard off: drained by its owner, then moved with
// epoch + 1.
import { internal } from "@berth/proto";
import type { Log } from "./cluster-log.js";
import { drainShardInMap, moveShardInMap } from "./shard-map-ops.js";
import type { ShardMapPublisher } from "./shard-map-publisher.js";
import type { ShardReports } from "./shard-reports.js";

/** Answer of {@link ShardMover.move}. */
export interface ShardMove {
  readonly shard: number;
  readonly from: string;
  readonly to: string;
  readonly epoch: number;
  readonly revision: number;
  /** False when `to` already owned the shard (nothing was written). */
  readonly changed: boolean;
}

/** Longest wait for the new owner to serve a moved shard. */
const MOVE_TIMEOUT_MS = 30_000;
/** Longest wait for an owner to report a DRAINING shard drained before it is moved anyway. */
const DRAIN_TIMEOUT_MS = 5000;

/** Moves shards, queued so that one move is in flight at a time. */
export class ShardMover {
  readonly #publisher: ShardMapPublisher;
  readonly #reports: ShardReports;
  readonly #log: Log;
  #queue: Promise<void> = Promise.resolve();

  constructor(publisher: ShardMapPublisher, reports: ShardReports, log: Log) {
    this.#publisher = publisher;
    this.#reports = reports;
    this.#log = log;
  }

  /** See LocalCluster.moveShard. */
  move(shard: number, to: string): Promise<ShardMove> {
    const run = this.#queue.then(() => this.#move(shard, to));
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #move(shard: number, to: string): Promise<ShardMove> {
    const publisher = this.#publisher;
    const from = publisher.map.shards[shard]?.owner ?? "";
    // Checks the shard and the worker before anything is published.
    const changed = moveShardInMap(publisher.map, shard, to) !== publisher.map;
    if (changed) {
      if (from !== "" && this.#reports.reporting(from)) await this.#drain(shard, from, to);
      const next = moveShardInMap(publisher.map, shard, to);
      await publisher.publish(next);
      const epoch = next.shards[shard]?.epoch ?? 0;
      this.#log("info", `moving shard ${shard} from ${from} to ${to}`, {
        shard,
        epoch,
        revision: next.revision,
      });
      const { SHARD_REPORT_STATE_SERVING } = internal.ShardReportState;
      await this.#reports.waitFor(
        `${to} serves shard ${shard} at epoch ${epoch}`,
        () => {
          const r = this.#reports.reportOf(to, shard);
          return r?.state === SHARD_REPORT_STATE_SERVING && r.epoch >= epoch;
        },
        MOVE_TIMEOUT_MS,
      );
      this.#log("info", `moved shard ${shard} to ${to}`, { shard, epoch });
    }
    const map = publisher.map;
    return {
      shard,
      from,
      to,
      epoch: map.shards[shard]?.epoch ?? 0,
      revision: map.revision,
      changed,
    };
  }

  /** Marks `shard` DRAINING and waits (bounded) until its owner `from` reports it drained. */
  async #drain(shard: number, from: string, to: string): Promise<void> {
    const draining = drainShardInMap(this.#publisher.map, shard);
    const epoch = draining.shards[shard]?.epoch ?? 0;
    await this.#publisher.publish(draining);
    this.#log("info", `draining shard ${shard} on ${from} before moving it to ${to}`, {
      event: "local.draining_shard",
      from,
      to,
      shard,
      epoch,
      revision: draining.revision,
    });
    const { SHARD_REPORT_STATE_DRAINED } = internal.ShardReportState;
    await this.#reports
      .waitFor(
        `${from} reports shard ${shard} drained at epoch ${epoch}`,
        () => {
          const r = this.#reports.reportOf(from, shard);
          // A worker that went away has nothing in flight any more.
          const gone = !this.#reports.reporting(from);
          return gone || (r?.state === SHARD_REPORT_STATE_DRAINED && r.epoch === epoch);
        },
        DRAIN_TIMEOUT_MS,
      )
      .catch(() =>
        this.#log(
          "warn",
          `${from} did not report shard ${shard} drained within ${DRAIN_TIMEOUT_MS} ms; moving it anyway (the new epoch fences ${from})`,
          { event: "local.drain_timeout", from, shard, epoch },
        ),
      );
  }
}
