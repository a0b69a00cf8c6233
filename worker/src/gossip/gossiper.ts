// Spreads pool counters to peers: batched deltas, periodic anti-entropy, pull on start.

import { type InternalTransport, plaintextTransport } from "@berth/common";
import { internal } from "@berth/proto";
import { type ChannelOptions, Metadata, type ServiceError } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { type GossipObserver, gossipServiceHandlers } from "./gossip-service.js";
import { chunkBySize, MAX_GOSSIP_MESSAGE_BYTES } from "./message-size.js";
import type { Replica } from "./replica.js";

/** Options of a {@link Gossiper}. */
export interface GossiperOptions {
  /** This node's id, sent as `from`. */
  readonly nodeId: string;
  /** The node's replica: published entries go in, received ones are merged into it. */
  readonly replica: Replica;
  /** host:port of the GossipService of every peer, excluding this node. Read on every round. */
  readonly peers: () => readonly string[];
  /** How long deltas are batched before a Push, in ms. Default 10. */
  readonly pushDelayMs?: number;
  /** Period of anti-entropy rounds, in ms. Default 1000. */
  readonly antiEntropyIntervalMs?: number;
  /**
   * Entries this node is authoritative for (workers: the pools of the shards it owns),
   * pushed whole to every peer on each anti-entropy round. Absent: a read-only
   * replica (gateway) that never pushes.
   */
  readonly owned?: () => Iterable<internal.PoolCounters>;
  /**
   * A read-only replica that owners do not push to (in Kubernetes, workers do not know
   * every gateway pod) pulls the whole replica from one peer, round-robin, this often.
   * Absent: no periodic pull (owners push to this node).
   */
  readonly pullIntervalMs?: number;
  readonly logger: Logger;
  /** Where the `berth_gossip_*` metrics are registered. */
  readonly registry: Registry;
  /** Channel options of the clients to peers. */
  readonly clientOptions?: ChannelOptions;
  /**
   * Credentials of the peer clients (mutual TLS with `--internal-tls-dir`); its channel
   * options are merged under `clientOptions`. Default: plaintext.
   */
  readonly transport?: InternalTransport;
  /** Deadline of each Push and Pull call, in ms. Default 5000. */
  readonly callTimeoutMs?: number;
  /** Least time between two warnings about the same unreachable peer, in ms. Default 30000. */
  readonly warnIntervalMs?: number;
  /**
   * For this long after start(), a peer that has never answered is not warned about
   * (processes of a cluster start in any order). Default 10000 ms.
   */
  readonly startupGraceMs?: number;
  /**
   * Largest Push message and Pull page (of {@link Gossiper.serviceHandlers}), in
   * encoded bytes. Default {@link MAX_GOSSIP_MESSAGE_BYTES}.
   */
  readonly maxMessageBytes?: number;
}

interface Peer {
  readonly address: string;
  readonly client: internal.GossipServiceClient;
  /** Deltas waiting for the push in flight to finish, newest version per pool. */
  pending: Map<string, internal.PoolCounters>;
  pushing: boolean;
  antiEntropyRunning: boolean;
  /** Consecutive failed calls. */
  failures: number;
  lastWarnMs: number;
  suppressed: number;
  closed: boolean;
  /** Whether a call to this peer ever succeeded. */
  reached: boolean;
}

interface Metrics {
  readonly pushesSent: Counter<"peer">;
  readonly pushesFailed: Counter<"peer">;
  readonly pullsFailed: Counter<"peer">;
  readonly applied: Counter<"source">;
  readonly lastReceived: Gauge<"from">;
}

/**
 * Spreads pool counters between nodes. {@link publish} applies an entry locally and
 * pushes it to every peer after a short batching delay; every anti-entropy interval
 * an owner pushes all its {@link GossiperOptions.owned} entries to every peer, which
 * both repairs lost deltas and proves freshness; {@link start} first catches up by
 * pulling from the first peer that answers. Unreachable peers are counted and logged
 * (rate-limited), never thrown about. One lazily created client per peer address,
 * closed when the address leaves `peers()`.
 */
export class Gossiper {
  readonly #o: GossiperOptions;
  readonly #transport: InternalTransport;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #observer: GossipObserver;
  readonly #pushDelayMs: number;
  readonly #antiEntropyMs: number;
  readonly #callTimeoutMs: number;
  readonly #warnIntervalMs: number;
  readonly #startupGraceMs: number;
  #startedAtMs = Number.NEGATIVE_INFINITY;
  readonly #maxBytes: number;
  readonly #peers = new Map<string, Peer>();
  /** Addresses grpc-js refused, reported once each. */
  readonly #rejected = new Set<string>();
  /** Deltas published since the last flush. */
  #outbox = new Map<string, internal.PoolCounters>();
  #flushTimer: NodeJS.Timeout | undefined;
  #antiEntropyTimer: NodeJS.Timeout | undefined;
  #pullTimer: NodeJS.Timeout | undefined;
  #pullTurn = 0;
  #pulling = false;
  #started = false;
  #stopped = false;
  /** Calls in flight, so stop() can wait for them before closing the clients. */
  readonly #inflight = new Set<Promise<unknown>>();

  constructor(options: GossiperOptions) {
    this.#o = options;
    this.#transport = options.transport ?? plaintextTransport();
    this.#log = options.logger.child({ module: "gossip", node: options.nodeId });
    this.#pushDelayMs = options.pushDelayMs ?? 10;
    this.#antiEntropyMs = options.antiEntropyIntervalMs ?? 1000;
    this.#callTimeoutMs = options.callTimeoutMs ?? 5000;
    this.#warnIntervalMs = options.warnIntervalMs ?? 30_000;
    this.#startupGraceMs = options.startupGraceMs ?? 10_000;
    this.#maxBytes = options.maxMessageBytes ?? MAX_GOSSIP_MESSAGE_BYTES;
    const registers = [options.registry];
    const replica = options.replica;
    this.#metrics = {
      pushesSent: new Counter({
        name: "berth_gossip_pushes_sent_total",
        help: "Push calls that a peer answered, by peer address.",
        labelNames: ["peer"],
        registers,
      }),
      pushesFailed: new Counter({
        name: "berth_gossip_pushes_failed_total",
        help: "Push calls that failed (peer unreachable, deadline, error), by peer address.",
        labelNames: ["peer"],
        registers,
      }),
      pullsFailed: new Counter({
        name: "berth_gossip_pulls_failed_total",
        help: "Pull calls that failed, by peer address.",
        labelNames: ["peer"],
        registers,
      }),
      applied: new Counter({
        name: "berth_gossip_entries_applied_total",
        help: "Entries that were newer than the replica's copy, by source (publish, push, pull).",
        labelNames: ["source"],
        registers,
      }),
      lastReceived: new Gauge({
        name: "berth_gossip_last_received_timestamp_seconds",
        help: "When this node last received a Push from each sender node id (Unix time).",
        labelNames: ["from"],
        registers,
      }),
    };
    new Gauge({
      name: "berth_gossip_replica_staleness_seconds",
      help: "Age of the oldest counters in this node's gossip replica (retired pools aside): how old the data GetAvailability answers from may be. Grows while a pool's owner is not confirming it (owner down, shard unassigned, gossip cut off).",
      registers,
      collect() {
        this.set(replica.maxStaleMs() / 1000);
      },
    });
    new Gauge({
      name: "berth_gossip_replica_entries",
      help: "Pools in this node's gossip replica.",
      registers,
      collect() {
        this.set(replica.size);
      },
    });
    const m = this.#metrics;
    this.#observer = {
      pushReceived(from, _entries, accepted) {
        m.applied.inc({ source: "push" }, accepted);
        m.lastReceived.set({ from }, Date.now() / 1000);
      },
    };
  }

  /**
   * The GossipService handlers for this node's server, counting received pushes in
   * this gossiper's metrics.
   */
  serviceHandlers(): internal.GossipServiceServer {
    return gossipServiceHandlers(this.#o.replica, this.#log, {
      observer: this.#observer,
      maxMessageBytes: this.#maxBytes,
    });
  }

  /**
   * Applies `counters` to the local replica and, if it was newer, queues it for the
   * next batched Push to every peer. Call with the pool's counters after each change.
   */
  publish(counters: internal.PoolCounters): void {
    const accepted = this.#o.replica.apply([counters]);
    if (accepted === 0 || this.#stopped) return;
    this.#metrics.applied.inc({ source: "publish" }, accepted);
    const queued = this.#outbox.get(counters.pool);
    if (queued === undefined || queued.version < counters.version) {
      this.#outbox.set(counters.pool, counters);
    }
    if (this.#flushTimer === undefined) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = undefined;
        this.#flush();
      }, this.#pushDelayMs);
      this.#flushTimer.unref();
    }
  }

  /**
   * Pulls the replica from the first peer that answers (all pages), then starts the
   * anti-entropy rounds. Resolves once the pull is done or every peer failed; never
   * rejects. Calls after the first, or after {@link stop}, do nothing.
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#startedAtMs = Date.now();
    await this.#pullFromFirstPeer();
    if (this.#stopped) return;
    this.#antiEntropyTimer = setInterval(() => this.#antiEntropy(), this.#antiEntropyMs);
    this.#antiEntropyTimer.unref();
    if (this.#o.pullIntervalMs !== undefined) {
      this.#pullTimer = setInterval(() => this.#pullRound(), this.#o.pullIntervalMs);
      this.#pullTimer.unref();
    }
  }

  /** One periodic pull (read-only replicas): the next peer in turn, all pages; skipped while one runs. */
  #pullRound(): void {
    if (this.#stopped || this.#pulling) return;
    const peers = this.#currentPeers();
    if (peers.length === 0) return;
    const peer = peers[this.#pullTurn++ % peers.length] as Peer;
    this.#pulling = true;
    const pulling = this.#pullAll(peer).finally(() => {
      this.#pulling = false;
    });
    this.#spawn(pulling);
  }

  /**
   * Stops the rounds, sends the deltas still queued (best effort, within the call
   * deadline), waits for the calls in flight, and closes every client. The gossiper
   * cannot be restarted.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    clearInterval(this.#antiEntropyTimer);
    this.#antiEntropyTimer = undefined;
    clearInterval(this.#pullTimer);
    this.#pullTimer = undefined;
    this.#flush();
    this.#stopped = true;
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    for (const peer of this.#peers.values()) this.#close(peer);
    this.#peers.clear();
  }

  /** Reconciles clients with `peers()`: creates missing ones, closes departed ones. */
  #currentPeers(): Peer[] {
    let wanted: readonly string[];
    try {
      wanted = this.#o.peers();
    } catch (e: unknown) {
      this.#log.error({ err: e }, "gossip peers() failed; keeping the previous peers");
      return [...this.#peers.values()];
    }
    const keep = new Set(wanted);
    for (const [address, peer] of this.#peers) {
      if (!keep.has(address)) {
        this.#close(peer);
        this.#peers.delete(address);
        this.#log.info({ peer: address }, "gossip peer removed");
      }
    }
    const out: Peer[] = [];
    for (const address of keep) {
      let peer = this.#peers.get(address);
      if (peer === undefined) {
        let client: internal.GossipServiceClient;
        try {
          client = new internal.GossipServiceClient(address, this.#transport.channelCredentials, {
            ...this.#transport.channelOptions,
            ...this.#o.clientOptions,
          });
        } catch (e: unknown) {
          if (!this.#rejected.has(address)) {
            this.#rejected.add(address);
            this.#log.error({ peer: address, err: e }, "gossip peer address rejected; skipping it");
          }
          continue;
        }
        peer = {
          address,
          client,
          pending: new Map(),
          pushing: false,
          antiEntropyRunning: false,
          failures: 0,
          lastWarnMs: Number.NEGATIVE_INFINITY,
          suppressed: 0,
          closed: false,
          reached: false,
        };
        this.#peers.set(address, peer);
      }
      out.push(peer);
    }
    return out;
  }

  #close(peer: Peer): void {
    peer.closed = true;
    peer.pending.clear();
    peer.client.close();
    for (const c of [
      this.#metrics.pushesSent,
      this.#metrics.pushesFailed,
      this.#metrics.pullsFailed,
    ]) {
      c.remove({ peer: peer.address });
    }
  }

  /** Moves the outbox to every peer's pending deltas and starts pushes where none is in flight. */
  #flush(): void {
    if (this.#stopped || this.#outbox.size === 0) return;
    const batch = this.#outbox;
    this.#outbox = new Map();
    for (const peer of this.#currentPeers()) {
      for (const [pool, c] of batch) {
        const queued = peer.pending.get(pool);
        if (queued === undefined || queued.version < c.version) peer.pending.set(pool, c);
      }
      if (!peer.pushing) this.#spawn(this.#drain(peer));
    }
  }

  /** Pushes a peer's pending deltas until none are left; one push in flight per peer. */
  async #drain(peer: Peer): Promise<void> {
    peer.pushing = true;
    try {
      while (peer.pending.size > 0 && !peer.closed) {
        const batch = peer.pending;
        peer.pending = new Map();
        for (const chunk of chunkBySize(batch.values(), this.#maxBytes)) {
          // A failed delta is not retried: the owner's next anti-entropy round repairs it.
          if (!(await this.#push(peer, chunk))) break;
        }
      }
    } finally {
      peer.pushing = false;
    }
  }

  #antiEntropy(): void {
    const owned = this.#o.owned;
    if (this.#stopped || owned === undefined) return;
    let entries: internal.PoolCounters[];
    try {
      entries = [...owned()];
    } catch (e: unknown) {
      this.#log.error({ err: e }, "gossip owned() failed; skipping this anti-entropy round");
      return;
    }
    // The owner's own replica is confirmed by the same round.
    this.#metrics.applied.inc({ source: "publish" }, this.#o.replica.apply(entries));
    const chunks = [...chunkBySize(entries, this.#maxBytes)];
    for (const peer of this.#currentPeers()) {
      // A slow peer still busy with the previous round skips this one.
      if (peer.antiEntropyRunning) continue;
      this.#spawn(this.#pushAll(peer, chunks));
    }
  }

  async #pushAll(peer: Peer, chunks: readonly internal.PoolCounters[][]): Promise<void> {
    peer.antiEntropyRunning = true;
    try {
      for (const chunk of chunks) {
        if (peer.closed || !(await this.#push(peer, chunk))) return;
      }
    } finally {
      peer.antiEntropyRunning = false;
    }
  }

  /** One Push call; resolves true when the peer answered. Never rejects. */
  #push(peer: Peer, entries: internal.PoolCounters[]): Promise<boolean> {
    return new Promise((resolve) => {
      const deadline = new Date(Date.now() + this.#callTimeoutMs);
      try {
        peer.client.push(
          { from: this.#o.nodeId, entries },
          new Metadata(),
          { deadline },
          (err: ServiceError | null) => {
            if (err) {
              this.#failed(peer, "push", err);
              resolve(false);
            } else {
              if (!peer.closed) this.#metrics.pushesSent.inc({ peer: peer.address });
              this.#succeeded(peer);
              resolve(true);
            }
          },
        );
      } catch (e: unknown) {
        // A client closed under us (peer removed, stop()).
        this.#failed(peer, "push", e);
        resolve(false);
      }
    });
  }

  async #pullFromFirstPeer(): Promise<void> {
    const peers = this.#currentPeers();
    if (peers.length === 0) {
      this.#log.info("gossip has no peers to pull from");
      return;
    }
    for (const peer of peers) {
      if (this.#stopped) return;
      const pulling = this.#pullAll(peer);
      this.#spawn(pulling);
      const pulled = await pulling;
      if (pulled !== undefined) {
        this.#log.info(
          { peer: peer.address, entries: pulled.entries, accepted: pulled.accepted },
          "gossip replica pulled",
        );
        return;
      }
    }
    // Expected when this node starts before its peers: owners' anti-entropy fills in.
    this.#log.info(
      { peers: peers.map((p) => p.address) },
      "no gossip peer answered the initial pull; anti-entropy will fill the replica",
    );
  }

  /** Pulls every page from `peer`; undefined if a call failed (what arrived is kept). */
  async #pullAll(peer: Peer): Promise<{ entries: number; accepted: number } | undefined> {
    let token = "";
    let entries = 0;
    let accepted = 0;
    do {
      const page = await this.#pull(peer, token);
      if (page === undefined) return undefined;
      entries += page.entries.length;
      const n = this.#o.replica.apply(page.entries, { relayed: true });
      accepted += n;
      this.#metrics.applied.inc({ source: "pull" }, n);
      token = page.next;
    } while (token !== "" && !this.#stopped && !peer.closed);
    return { entries, accepted };
  }

  #pull(
    peer: Peer,
    token: string,
  ): Promise<{ entries: internal.PoolCounters[]; next: string } | undefined> {
    return new Promise((resolve) => {
      try {
        peer.client.pull(
          { from: this.#o.nodeId, pageToken: token },
          new Metadata(),
          { deadline: new Date(Date.now() + this.#callTimeoutMs) },
          (err, response) => {
            if (err) {
              this.#failed(peer, "pull", err);
              resolve(undefined);
            } else {
              this.#succeeded(peer);
              resolve({ entries: response.entries, next: response.nextPageToken });
            }
          },
        );
      } catch (e: unknown) {
        this.#failed(peer, "pull", e);
        resolve(undefined);
      }
    });
  }

  #failed(peer: Peer, call: "push" | "pull", err: unknown): void {
    // A removed peer's series are gone; counting would recreate them.
    if (!peer.closed) {
      (call === "push" ? this.#metrics.pushesFailed : this.#metrics.pullsFailed).inc({
        peer: peer.address,
      });
    }
    peer.failures++;
    const fields = {
      peer: peer.address,
      call,
      code: (err as Partial<ServiceError>).code,
      err: (err as Partial<ServiceError>).details ?? String(err),
      failures: peer.failures,
    };
    const now = Date.now();
    const starting = !peer.reached && now - this.#startedAtMs < this.#startupGraceMs;
    if (!starting && now - peer.lastWarnMs >= this.#warnIntervalMs && !peer.closed) {
      this.#log.warn({ ...fields, suppressed: peer.suppressed }, "gossip peer unreachable");
      peer.lastWarnMs = now;
      peer.suppressed = 0;
    } else {
      peer.suppressed++;
      this.#log.debug(fields, "gossip peer unreachable");
    }
  }

  #succeeded(peer: Peer): void {
    const first = !peer.reached;
    peer.reached = true;
    if (peer.failures > 0) {
      this.#log[first ? "debug" : "info"](
        { peer: peer.address, failures: peer.failures },
        first ? "gossip peer reachable" : "gossip peer reachable again",
      );
      peer.failures = 0;
      peer.lastWarnMs = Number.NEGATIVE_INFINITY;
      peer.suppressed = 0;
    }
  }

  /** Runs a never-rejecting task in the background; stop() waits for it. */
  #spawn(task: Promise<unknown>): void {
    this.#inflight.add(task);
    task
      .finally(() => this.#inflight.delete(task))
      .catch((e: unknown) => this.#log.error({ err: e }, "gossip internal error"));
  }
}
