// Spreads pool counters to peers: batched deltas, periodic digest anti-entropy, pull on start.

import { type internal, timestampMs } from "@berth/proto";
import { type ChannelOptions, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { GossipServiceClient, type GossipServiceServer } from "../grpc-services.js";
import { type InternalTransport, plaintextTransport } from "../internal-tls.js";
import { BUCKET_COUNT, bucketOfHash, DigestSum, fnv1a32 } from "./digest.js";
import { type GossipObserver, gossipServiceHandlers } from "./gossip-service.js";
import { chunkBySize, encodedSizeBound, MAX_GOSSIP_MESSAGE_BYTES } from "./message-size.js";
import type { Replica } from "./replica.js";

/** Options of a {@link Gossiper}. */
export interface GossiperOptions {
  /** This node's id, sent as `from`. */
  readonly nodeId: string;
  /** The node's replica: published entries go in, received ones are merged into it. */
  readonly replica: Replica;
  /** host:port of the GossipService of every peer, excluding this node. Read on every round. */
  readonly peers: () => readonly string[];
  /**
   * How long deltas are batched before a Push, in ms. Default 50: over 1,000 pools at
   * c=64 this cut the CPU of all Berth processes per reserve by about a fifth against
   * 10 ms (fewer, larger Push calls between workers; docs/benchmarks.md, issue 10), for
   * at most 40 ms more staleness of a peer's copy.
   */
  readonly pushDelayMs?: number;
  /**
   * Period of anti-entropy rounds, in ms: each sends every peer a Digest of the
   * entries this node owns (per bucket) and pushes whole only the buckets the peer
   * answers differ. Default 1000.
   */
  readonly antiEntropyIntervalMs?: number;
  /**
   * Entries this node is authoritative for (workers: the pools of the shards it owns).
   * Read whole only every {@link ownedRefreshIntervalMs} (and on the first round);
   * in between, {@link Gossiper.publish} keeps the digests current. Absent: a
   * read-only replica (gateway) that never pushes.
   */
  readonly owned?: () => Iterable<internal.PoolCounters>;
  /**
   * How often `owned()` is read whole, in ms: how soon pools gained without a publish
   * (a shard moved here) or lost (moved away) show in the digests. Default 5000.
   */
  readonly ownedRefreshIntervalMs?: number;
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
  readonly client: GossipServiceClient;
  /** Deltas waiting for the push in flight to finish, newest version per pool. */
  pending: Map<string, internal.PoolCounters>;
  pushing: boolean;
  antiEntropyRunning: boolean;
  /** The peer does not serve Digest (an older build): anti-entropy pushes every entry. */
  noDigest: boolean;
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
  readonly digestsSent: Counter<"peer">;
  readonly bucketsRepaired: Counter<"peer">;
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
  readonly #ownedRefreshMs: number;
  #lastOwnedRefreshMs = Number.NEGATIVE_INFINITY;
  /** Owned pools by bucket (pool id → version), and their digests. */
  readonly #mine: Map<string, number>[] = Array.from({ length: BUCKET_COUNT }, () => new Map());
  readonly #mineSums: DigestSum[] = Array.from({ length: BUCKET_COUNT }, () => new DigestSum());
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
    this.#pushDelayMs = options.pushDelayMs ?? 50;
    this.#antiEntropyMs = options.antiEntropyIntervalMs ?? 1000;
    this.#ownedRefreshMs = options.ownedRefreshIntervalMs ?? 5000;
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
      digestsSent: new Counter({
        name: "berth_gossip_digests_sent_total",
        help: "Digest calls (anti-entropy rounds) that a peer answered, by peer address.",
        labelNames: ["peer"],
        registers,
      }),
      bucketsRepaired: new Counter({
        name: "berth_gossip_buckets_repaired_total",
        help: "Buckets pushed whole because a peer's copy differed from this owner's digest, by peer address.",
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
  serviceHandlers(): GossipServiceServer {
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
    const accepted = this.#o.replica.apply([counters], { from: this.#o.nodeId });
    if (accepted === 0 || this.#stopped) return;
    if (this.#o.owned !== undefined) this.#own(counters);
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

  /** Counts `c` in this owner's digests. */
  #own(c: internal.PoolCounters): void {
    const h = fnv1a32(c.pool);
    const b = bucketOfHash(h);
    const pools = this.#mine[b] as Map<string, number>;
    const sum = this.#mineSums[b] as DigestSum;
    const old = pools.get(c.pool);
    if (old !== undefined) {
      if (old >= c.version) return;
      sum.remove(h, old);
    }
    pools.set(c.pool, c.version);
    sum.add(h, c.version);
  }

  /** Re-reads `owned()` whole: the digests then cover exactly the pools owned now. */
  #refreshOwned(owned: () => Iterable<internal.PoolCounters>): boolean {
    let entries: internal.PoolCounters[];
    try {
      entries = [...owned()];
    } catch (e: unknown) {
      this.#log.error({ err: e }, "gossip owned() failed; skipping this anti-entropy round");
      return false;
    }
    this.#lastOwnedRefreshMs = Date.now();
    // The owner's own replica is confirmed by the same read.
    this.#metrics.applied.inc(
      { source: "publish" },
      this.#o.replica.apply(entries, { from: this.#o.nodeId }),
    );
    for (let b = 0; b < BUCKET_COUNT; b++) {
      (this.#mine[b] as Map<string, number>).clear();
      const sum = this.#mineSums[b] as DigestSum;
      sum.count = 0;
      sum.versionSum = 0;
      sum.hash = 0;
    }
    for (const c of entries) this.#own(c);
    return true;
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
        let client: GossipServiceClient;
        try {
          client = new GossipServiceClient(address, this.#transport.channelCredentials, {
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
          noDigest: false,
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
      this.#metrics.digestsSent,
      this.#metrics.bucketsRepaired,
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
    if (Date.now() - this.#lastOwnedRefreshMs >= this.#ownedRefreshMs) {
      if (!this.#refreshOwned(owned)) return;
    }
    const digests: internal.BucketDigest[] = [];
    for (let b = 0; b < BUCKET_COUNT; b++) {
      const sum = this.#mineSums[b] as DigestSum;
      if (sum.count > 0) digests.push(sum.toMessage(b));
    }
    // Confirms this owner's own entries in its own replica.
    this.#o.replica.compareDigests(this.#o.nodeId, digests);
    for (const peer of this.#currentPeers()) {
      // A slow peer still busy with the previous round skips this one.
      if (peer.antiEntropyRunning) continue;
      this.#spawn(this.#antiEntropyWith(peer, digests));
    }
  }

  async #antiEntropyWith(peer: Peer, digests: internal.BucketDigest[]): Promise<void> {
    peer.antiEntropyRunning = true;
    try {
      let differing: readonly number[] | undefined;
      if (!peer.noDigest) {
        const answer = await this.#digest(peer, digests);
        if (answer === "unimplemented") {
          peer.noDigest = true;
          this.#log.info(
            { peer: peer.address },
            "gossip peer does not serve Digest (an older build); pushing every owned entry to it",
          );
        } else if (answer === undefined) {
          return;
        } else {
          differing = answer;
        }
      }
      if (differing === undefined) {
        const all: number[] = [];
        for (let b = 0; b < BUCKET_COUNT; b++)
          if ((this.#mine[b] as Map<string, number>).size > 0) all.push(b);
        await this.#pushBuckets(peer, all, false);
      } else if (differing.length > 0) {
        if (!peer.closed)
          this.#metrics.bucketsRepaired.inc({ peer: peer.address }, differing.length);
        await this.#pushBuckets(peer, differing, true);
      }
    } finally {
      peer.antiEntropyRunning = false;
    }
  }

  /**
   * Pushes every owned entry of `buckets` (as this node's replica holds it), whole
   * buckets per message, each message naming the buckets it completes.
   */
  async #pushBuckets(peer: Peer, buckets: readonly number[], complete: boolean): Promise<void> {
    let chunk: internal.PoolCounters[] = [];
    let completed: number[] = [];
    let size = 0;
    const send = async (): Promise<boolean> => {
      if (chunk.length === 0 && completed.length === 0) return true;
      const ok = complete
        ? await this.#pushBucketsCall(peer, chunk, completed)
        : await this.#push(peer, chunk);
      chunk = [];
      completed = [];
      size = 0;
      return ok;
    };
    for (const b of buckets) {
      const pools = this.#mine[b];
      if (pools === undefined) continue;
      const entries: internal.PoolCounters[] = [];
      let bytes = 0;
      for (const pool of pools.keys()) {
        const c = this.#o.replica.get(pool)?.counters;
        if (c === undefined) continue;
        entries.push(c);
        bytes += encodedSizeBound(c);
      }
      if (size + bytes > this.#maxBytes && !(await send())) return;
      if (bytes > this.#maxBytes) {
        // A bucket too large for one message goes in pieces, none claiming it whole.
        for (const piece of chunkBySize(entries, this.#maxBytes)) {
          if (peer.closed || !(await this.#push(peer, piece))) return;
        }
        continue;
      }
      chunk.push(...entries);
      completed.push(b);
      size += bytes;
    }
    await send();
  }

  /** One Digest call: the differing buckets, "unimplemented", or undefined on failure. */
  #digest(
    peer: Peer,
    digests: internal.BucketDigest[],
  ): Promise<readonly number[] | "unimplemented" | undefined> {
    return new Promise((resolve) => {
      try {
        peer.client.digest(
          { from: this.#o.nodeId, digests, bucketCount: BUCKET_COUNT },
          new Metadata(),
          { deadline: new Date(Date.now() + this.#callTimeoutMs) },
          (err, response) => {
            if (err) {
              if (err.code === status.UNIMPLEMENTED) {
                this.#succeeded(peer);
                resolve("unimplemented");
                return;
              }
              this.#failed(peer, "push", err);
              resolve(undefined);
            } else {
              if (!peer.closed) this.#metrics.digestsSent.inc({ peer: peer.address });
              this.#succeeded(peer);
              resolve(response.differingBuckets);
            }
          },
        );
      } catch (e: unknown) {
        this.#failed(peer, "push", e);
        resolve(undefined);
      }
    });
  }

  /** One PushBuckets call; resolves true when the peer answered. Never rejects. */
  #pushBucketsCall(
    peer: Peer,
    entries: internal.PoolCounters[],
    completeBuckets: number[],
  ): Promise<boolean> {
    return this.#pushing(peer, (deadline, done) =>
      peer.client.pushBuckets(
        { from: this.#o.nodeId, entries, completeBuckets, bucketCount: BUCKET_COUNT },
        new Metadata(),
        { deadline },
        done,
      ),
    );
  }

  /** One Push call; resolves true when the peer answered. Never rejects. */
  #push(peer: Peer, entries: internal.PoolCounters[]): Promise<boolean> {
    return this.#pushing(peer, (deadline, done) =>
      peer.client.push({ from: this.#o.nodeId, entries }, new Metadata(), { deadline }, done),
    );
  }

  /**
   * Runs one call that pushes entries to `peer` (Push or PushBuckets) with the call
   * deadline, counting it as a push; resolves true when the peer answered. Never rejects.
   */
  #pushing(
    peer: Peer,
    call: (deadline: Date, done: (err: ServiceError | null) => void) => unknown,
  ): Promise<boolean> {
    return new Promise((resolve) => {
      try {
        call(new Date(Date.now() + this.#callTimeoutMs), (err) => {
          if (err) {
            this.#failed(peer, "push", err);
            resolve(false);
          } else {
            if (!peer.closed) this.#metrics.pushesSent.inc({ peer: peer.address });
            this.#succeeded(peer);
            resolve(true);
          }
        });
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
    // Only the buckets whose digest differs come back; the rest are confirmed.
    const digests = this.#o.replica.bucketDigests();
    const tick = this.#o.replica.tick;
    do {
      const page = await this.#pull(peer, token, digests);
      if (page === undefined) return undefined;
      if (token === "" && page.matching.length > 0) {
        this.#o.replica.confirmBuckets(
          page.matching.map((m) => ({
            bucket: m.bucket,
            confirmedAtMs: timestampMs(m.confirmedAt) ?? Number.NEGATIVE_INFINITY,
          })),
          tick,
        );
      }
      entries += page.entries.length;
      const n = this.#o.replica.apply(page.entries, { relayed: true, decoded: true });
      accepted += n;
      this.#metrics.applied.inc({ source: "pull" }, n);
      token = page.next;
    } while (token !== "" && !this.#stopped && !peer.closed);
    return { entries, accepted };
  }

  #pull(
    peer: Peer,
    token: string,
    digests: internal.BucketDigest[],
  ): Promise<
    | {
        entries: internal.PoolCounters[];
        next: string;
        matching: internal.BucketConfirmation[];
      }
    | undefined
  > {
    const options = { deadline: new Date(Date.now() + this.#callTimeoutMs) };
    return new Promise((resolve) => {
      const failed = (e: unknown) => {
        this.#failed(peer, "pull", e);
        resolve(undefined);
      };
      try {
        if (peer.noDigest) {
          peer.client.pull(
            { from: this.#o.nodeId, pageToken: token },
            new Metadata(),
            options,
            (err, response) => {
              if (err) return failed(err);
              this.#succeeded(peer);
              resolve({ entries: response.entries, next: response.nextPageToken, matching: [] });
            },
          );
          return;
        }
        peer.client.pullChanged(
          { from: this.#o.nodeId, pageToken: token, digests, bucketCount: BUCKET_COUNT },
          new Metadata(),
          options,
          (err, response) => {
            if (err?.code === status.UNIMPLEMENTED && token === "") {
              // An older build: plain Pull from now on.
              peer.noDigest = true;
              resolve(this.#pull(peer, token, digests));
              return;
            }
            if (err) return failed(err);
            this.#succeeded(peer);
            resolve({
              entries: response.entries,
              next: response.nextPageToken,
              matching: response.matching,
            });
          },
        );
      } catch (e: unknown) {
        failed(e);
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
