// What the workers of the local cluster report about their shards (each one's
// WatchShards stream, followed across restarts), and waits on those reports.
import type { internal } from "@berth/proto";
import type { Log } from "./cluster-log.js";
import { ShardWatch } from "./shard-watch.js";

/** One watch per worker; every report re-checks the pending waits. */
export class ShardReports {
  readonly #watches: Map<string, ShardWatch>;
  readonly #waits = new Set<() => void>();

  constructor(members: readonly internal.Member[], clusterId: string, log: Log) {
    this.#watches = new Map(
      members.map((m) => [
        m.id,
        new ShardWatch({
          address: m.address,
          clusterId,
          onChange: () => {
            for (const check of [...this.#waits]) check();
          },
          onFailure: (s) =>
            log("warn", `watching ${m.id}'s shards failed; retrying`, {
              code: s.code,
              details: s.details,
            }),
        }),
      ]),
    );
  }

  /** What worker `id` last reported about `shard`, while its stream is open. */
  reportOf(id: string, shard: number): internal.ShardReport | undefined {
    return this.#watches.get(id)?.report(shard);
  }

  /** True while worker `id`'s stream is open and has reported (it is up). */
  reporting(id: string): boolean {
    return this.#watches.get(id)?.latest !== undefined;
  }

  /** True when every worker is {@link reporting}. */
  allReporting(): boolean {
    return [...this.#watches.values()].every((w) => w.latest !== undefined);
  }

  /**
   * Resolves once `done()` holds, checked now and after every report.
   *
   * @throws Error after `timeoutMs` ("timed out after … waiting until `what`")
   */
  waitFor(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolvePromise, reject) => {
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.#waits.delete(check);
        resolvePromise();
      };
      const timer = setTimeout(() => {
        this.#waits.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting until ${what}`));
      }, timeoutMs);
      this.#waits.add(check);
      check();
    });
  }

  close(): void {
    for (const w of this.#watches.values()) w.close();
  }
}
