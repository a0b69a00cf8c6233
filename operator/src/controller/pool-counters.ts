// The operator's read-only view of every pool's counters: it pulls gossip from one
// live worker at a time (any worker knows every pool's latest counters), keeps the
// highest version per pool and says which pools changed. Nothing is pushed to it, so
// workers need not know where the operator runs.
import {
  clusterClientOptions,
  GossipServiceClient,
  type InternalTransport,
  plaintextTransport,
} from "@berth/common";
import type { internal } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";

/** A pool's counters as the operator last saw them. */
export interface PoolCounter {
  readonly reserved: number;
  readonly capacity: number;
  readonly version: number;
}

/** Options of {@link PoolCounters}. */
export interface PoolCountersOptions {
  readonly clusterId: string;
  readonly logger: Logger;
  /** Time between two pulls. Default 1 s. */
  readonly intervalMs?: number;
  /** Deadline of one page. Default 5 s. */
  readonly timeoutMs?: number;
  /** Called with the ids of pools whose counters changed after each pull. */
  readonly onChanged: (pools: readonly string[]) => void;
  /** Credentials of the worker clients (mutual TLS with `--internal-tls-dir`); default plaintext. */
  readonly transport?: InternalTransport;
}

/** Pulls counters from the members it is given, round-robin, every interval. */
export class PoolCounters {
  readonly #o: PoolCountersOptions;
  readonly #log: Logger;
  readonly #counters = new Map<string, PoolCounter>();
  readonly #clients = new Map<string, GossipServiceClient>();
  #members: internal.Member[] = [];
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #pulls = 0;
  #failures = 0;

  constructor(options: PoolCountersOptions) {
    this.#o = options;
    this.#log = options.logger.child({ module: "pool-counters" });
  }

  /** The members to pull from (live workers). */
  setMembers(members: readonly internal.Member[]): void {
    this.#members = members.filter((m) => m.address !== "");
    const addresses = new Set(this.#members.map((m) => m.address));
    for (const [address, client] of this.#clients) {
      if (!addresses.has(address)) {
        client.close();
        this.#clients.delete(address);
      }
    }
  }

  /** Starts pulling. Idempotent. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /** Stops pulling and closes every channel. Idempotent. */
  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }

  /** The latest counters of a pool, if gossip has carried any. */
  get(pool: string): PoolCounter | undefined {
    return this.#counters.get(pool);
  }

  /** Pulls done and failed so far. */
  stats(): { pulls: number; failures: number; pools: number } {
    return { pulls: this.#pulls, failures: this.#failures, pools: this.#counters.size };
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#pullOnce().finally(() => this.#schedule(this.#o.intervalMs ?? 1_000));
    }, delayMs);
  }

  async #pullOnce(): Promise<void> {
    if (this.#members.length === 0) return;
    const member = this.#members[this.#next++ % this.#members.length] as internal.Member;
    const client = this.#client(member.address);
    const changed: string[] = [];
    let pageToken = "";
    try {
      do {
        const page = await pull(client, pageToken, this.#o.timeoutMs ?? 5_000);
        for (const e of page.entries) {
          const prev = this.#counters.get(e.pool);
          if (prev !== undefined && prev.version >= e.version) continue;
          this.#counters.set(e.pool, {
            reserved: e.reserved,
            capacity: e.capacity,
            version: e.version,
          });
          changed.push(e.pool);
        }
        pageToken = page.nextPageToken;
      } while (pageToken !== "" && this.#running);
      this.#pulls++;
    } catch (e: unknown) {
      this.#failures++;
      this.#log.debug(
        { member: member.id, address: member.address, err: (e as Error).message },
        "gossip pull failed; the next pull asks another worker",
      );
    }
    if (changed.length > 0) this.#o.onChanged(changed);
  }

  #client(address: string): GossipServiceClient {
    let c = this.#clients.get(address);
    if (c === undefined) {
      const transport = this.#o.transport ?? plaintextTransport();
      c = new GossipServiceClient(address, transport.channelCredentials, {
        ...transport.channelOptions,
        ...clusterClientOptions(this.#o.clusterId),
      });
      this.#clients.set(address, c);
    }
    return c;
  }
}

function pull(
  client: GossipServiceClient,
  pageToken: string,
  timeoutMs: number,
): Promise<internal.PullResponse> {
  return new Promise((resolve, reject) => {
    client.pull(
      { from: "operator", pageToken },
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err: grpc.ServiceError | null, res?: internal.PullResponse) => {
        if (err !== null || res === undefined) reject(err ?? new Error("empty pull response"));
        else resolve(res);
      },
    );
  });
}
