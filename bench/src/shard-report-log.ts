// When each worker began recovering and began serving each shard, as the worker
// itself reports on its WorkerControlService.WatchShards stream (the typed channel
// the operator and the supervisor use), never from its log lines.

import { ShardWatch } from "@berth/local";
import { internal } from "@berth/proto";

/** One shard served by one worker at one epoch. */
export interface ShardServed {
  readonly worker: string;
  readonly shard: number;
  readonly epoch: number;
  /** Wall-clock ms when a report first said RECOVERING at this epoch (if one did). */
  readonly recoveringAt: number | undefined;
  /** Wall-clock ms when a report first said SERVING at this epoch. */
  readonly servingAt: number;
}

/** Follows every worker's reports from construction until {@link close}. */
export class ShardReportLog {
  readonly #watches: ShardWatch[] = [];
  readonly #recoveringAt = new Map<string, number>();
  readonly #served = new Map<string, ShardServed>();

  constructor(
    workers: readonly { readonly id: string; readonly address: string }[],
    clusterId: string,
  ) {
    for (const w of workers) {
      const watch: ShardWatch = new ShardWatch({
        address: w.address,
        clusterId,
        onChange: () => this.#record(w.id, watch.latest),
      });
      this.#watches.push(watch);
    }
  }

  /** Shards whose SERVING was first reported in [from, to], by serving time. */
  servedBetween(from: number, to = Number.POSITIVE_INFINITY): ShardServed[] {
    return [...this.#served.values()]
      .filter((s) => s.servingAt >= from && s.servingAt <= to)
      .sort((a, b) => a.servingAt - b.servingAt);
  }

  close(): void {
    for (const w of this.#watches) w.close();
  }

  #record(worker: string, report: internal.WatchShardsResponse | undefined): void {
    if (report === undefined) return;
    const now = Date.now();
    for (const s of report.shards) {
      const key = `${worker}/${s.shard}/${s.epoch}`;
      if (s.state === internal.ShardReportState.SHARD_REPORT_STATE_RECOVERING) {
        if (!this.#recoveringAt.has(key)) this.#recoveringAt.set(key, now);
      } else if (
        s.state === internal.ShardReportState.SHARD_REPORT_STATE_SERVING &&
        !this.#served.has(key)
      ) {
        this.#served.set(key, {
          worker,
          shard: s.shard,
          epoch: s.epoch,
          recoveringAt: this.#recoveringAt.get(key),
          servingAt: now,
        });
      }
    }
  }
}
