import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { internal } from "@berth/proto";
import {
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { pino } from "pino";
import { Registry } from "prom-client";
import { GossipServiceClient, GossipServiceService } from "../grpc-services.js";
import { Gossiper, type GossiperOptions } from "./gossiper.js";
import { Replica } from "./replica.js";

const logger = pino({ level: process.env.BERTH_TEST_LOG_LEVEL ?? "silent" });
/** Generous: these bounds only catch "never", they do not measure speed. */
const EVENTUALLY_MS = 20_000;

interface Node {
  readonly id: string;
  readonly address: string;
  readonly replica: Replica;
  readonly gossiper: Gossiper;
  readonly registry: Registry;
  /** The peers this node gossips with; tests edit it. */
  peers: string[];
  /** Pools this node owns (anti-entropy source), by id. */
  readonly owned: Map<string, internal.PoolCounters>;
  stop(): Promise<void>;
}

const running = new Set<Node>();
after(async () => {
  await Promise.all([...running].map((n) => n.stop()));
});

async function startNode(
  id: string,
  options: {
    peers?: string[];
    port?: number;
    start?: boolean;
    owner?: boolean;
    now?: () => number;
    gossiper?: Partial<GossiperOptions>;
  } = {},
): Promise<Node> {
  const replica = new Replica(options.now ?? Date.now);
  const registry = new Registry();
  const owned = new Map<string, internal.PoolCounters>();
  const node = {
    id,
    replica,
    registry,
    owned,
    peers: options.peers ?? [],
  } as Partial<Node> & { peers: string[] };
  const gossiper = new Gossiper({
    nodeId: id,
    replica,
    peers: () => node.peers,
    logger: logger.child({ node: id }),
    registry,
    pushDelayMs: 5,
    antiEntropyIntervalMs: 200,
    ...(options.owner === false ? {} : { owned: () => owned.values() }),
    ...options.gossiper,
  });
  const server = new Server();
  server.addService(GossipServiceService, gossiper.serviceHandlers());
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `127.0.0.1:${options.port ?? 0}`,
      ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  const full = Object.assign(node, {
    address: `127.0.0.1:${port}`,
    gossiper,
    async stop() {
      running.delete(full);
      await gossiper.stop();
      server.forceShutdown();
    },
  }) as Node;
  running.add(full);
  if (options.start !== false) await gossiper.start();
  return full;
}

/** Publishes as the owner would: the entry becomes part of what anti-entropy pushes. */
function own(node: Node, counters: internal.PoolCounters): void {
  node.owned.set(counters.pool, counters);
  node.gossiper.publish(counters);
}

function counters(pool: string, version: number, reserved = version): internal.PoolCounters {
  return internal.PoolCounters.fromPartial({
    pool,
    version,
    capacity: 100,
    reserved,
    labels: { zone: "north" },
  });
}

async function eventually(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + EVENTUALLY_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not within ${EVENTUALLY_MS} ms: ${what}`);
    await sleep(10);
  }
}

const versionOf = (n: Node, pool: string) => n.replica.get(pool)?.counters.version;

async function metric(n: Node, name: string, labels: Record<string, string>): Promise<number> {
  const m = await n.registry.getSingleMetric(name)?.get();
  const v = m?.values.find((x) =>
    Object.entries(labels).every(([k, want]) => x.labels[k] === want),
  );
  return v?.value ?? 0;
}

/** Starts nodes with the given ids, each with every other one as a peer. */
async function cluster(ids: string[], gossiper: Partial<GossiperOptions> = {}): Promise<Node[]> {
  const nodes: Node[] = [];
  for (const id of ids) nodes.push(await startNode(id, { start: false, gossiper }));
  for (const n of nodes) n.peers = nodes.filter((m) => m !== n).map((m) => m.address);
  await Promise.all(nodes.map((n) => n.gossiper.start()));
  return nodes;
}

describe("gossip between real gRPC nodes", () => {
  test("a pool published on A becomes visible on B and C", async () => {
    const [a, b, c] = (await cluster(["a", "b", "c"], { antiEntropyIntervalMs: 60_000 })) as [
      Node,
      Node,
      Node,
    ];
    own(a, counters("ns/one", 1));
    own(a, counters("ns/one", 2));
    own(a, counters("ns/two", 1));
    await eventually("B and C have ns/one@2 and ns/two@1 by delta pushes", () =>
      [b, c].every((n) => versionOf(n, "ns/one") === 2 && versionOf(n, "ns/two") === 1),
    );
    assert.equal(b.replica.get("ns/one")?.counters.reserved, 2);
    const page = c.replica.query({
      minUnits: 1,
      includeClosed: false,
      pageSize: 10,
      pageToken: "",
    });
    assert.deepEqual(
      page.pools.map((p) => p.counters.pool),
      ["ns/one", "ns/two"],
    );
    // The sender counts a push when the answer arrives, which may be after B applied it.
    await eventually(
      "A counted its pushes to B",
      async () => (await metric(a, "berth_gossip_pushes_sent_total", { peer: b.address })) >= 1,
    );
    assert.ok((await metric(b, "berth_gossip_entries_applied_total", { source: "push" })) >= 2);
    assert.ok((await metric(c, "berth_gossip_last_received_timestamp_seconds", { from: "a" })) > 0);
    assert.equal(await metric(a, "berth_gossip_replica_entries", {}), 2);
    await Promise.all([a, b, c].map((n) => n.stop()));
  });

  test("a node started later catches up by pulling, before start() resolves", async () => {
    const [a, b] = (await cluster(["a", "b"], { antiEntropyIntervalMs: 60_000 })) as [Node, Node];
    for (let i = 0; i < 50; i++) own(a, counters(`ns/p${i}`, 3));
    await eventually("B has all 50 pools", () => b.replica.size === 50);
    // Only B as a peer, and no anti-entropy in this test's time: C can only learn by pulling.
    const c = await startNode("c", {
      peers: ["127.0.0.1:1", b.address],
      owner: false,
      gossiper: { antiEntropyIntervalMs: 60_000 },
    });
    assert.equal(c.replica.size, 50);
    assert.equal(versionOf(c, "ns/p49"), 3);
    assert.equal(await metric(c, "berth_gossip_pulls_failed_total", { peer: "127.0.0.1:1" }), 1);
    assert.equal(await metric(c, "berth_gossip_entries_applied_total", { source: "pull" }), 50);
    await Promise.all([a, b, c].map((n) => n.stop()));
  });

  test("a pull larger than one message arrives whole, page by page", async () => {
    const a = await startNode("a", { gossiper: { maxMessageBytes: 2_000 } });
    const entries = Array.from({ length: 300 }, (_, i) =>
      counters(`ns/p${String(i).padStart(3, "0")}`, 1),
    );
    a.replica.apply(entries);
    const b = await startNode("b", { peers: [a.address], owner: false });
    assert.equal(b.replica.size, 300);
    assert.deepEqual(
      [...b.replica.entries()].map((e) => e.counters.pool),
      entries.map((e) => e.pool),
    );
    await Promise.all([a, b].map((n) => n.stop()));
  });

  test("a pulled entry keeps its age: relaying does not make it look fresh", async () => {
    let skewMs = 60_000;
    const a = await startNode("a", { now: () => Date.now() - skewMs });
    a.replica.apply([counters("ns/old", 1)]);
    skewMs = 0;
    const b = await startNode("b", { peers: [a.address], owner: false });
    const page = b.replica.query({ minUnits: 1, includeClosed: false, pageSize: 1, pageToken: "" });
    assert.equal(page.pools[0]?.counters.pool, "ns/old");
    assert.ok(page.maxStaleMs >= 60_000, `staleness ${page.maxStaleMs} ms`);
    await Promise.all([a, b].map((n) => n.stop()));
  });

  test("a stale lower version pushed by a former owner never overwrites the newer one", async () => {
    const [a, b, c] = (await cluster(["a", "b", "c"])) as [Node, Node, Node];
    own(a, counters("ns/moved", 7, 70));
    await eventually("B and C have ns/moved@7", () =>
      [b, c].every((n) => versionOf(n, "ns/moved") === 7),
    );
    // The former owner still believes it owns the pool at version 5, publishes it and
    // keeps pushing it by anti-entropy.
    const former = await startNode("former", { peers: [b.address, c.address], start: false });
    const before = await Promise.all(
      [b, c].map((n) => metric(former, "berth_gossip_pushes_sent_total", { peer: n.address })),
    );
    own(former, counters("ns/moved", 5, 50));
    await former.gossiper.start();
    await eventually("B and C answered at least three pushes from the former owner", async () => {
      for (const [i, n] of [b, c].entries()) {
        const sent = await metric(former, "berth_gossip_pushes_sent_total", { peer: n.address });
        if (sent < (before[i] ?? 0) + 3) return false;
      }
      return true;
    });
    for (const n of [b, c]) {
      assert.equal(versionOf(n, "ns/moved"), 7);
      assert.equal(n.replica.get("ns/moved")?.counters.reserved, 70);
    }
    await Promise.all([a, b, c, former].map((n) => n.stop()));
  });

  test("a peer that is down does not hold up the others and is caught up by anti-entropy", async () => {
    const [a, b, c] = (await cluster(["a", "b", "c"])) as [Node, Node, Node];
    const cAddress = c.address;
    const cPort = Number(cAddress.split(":")[1]);
    await c.stop();

    own(a, counters("ns/during-outage", 1));
    await eventually(
      "B has the entry published while C is down",
      () => versionOf(b, "ns/during-outage") === 1,
    );
    await eventually(
      "A counted failed pushes to C",
      async () => (await metric(a, "berth_gossip_pushes_failed_total", { peer: cAddress })) > 0,
    );
    own(a, counters("ns/during-outage", 2));
    await eventually("B still gets deltas", () => versionOf(b, "ns/during-outage") === 2);

    // C comes back empty at the same address, and does not pull: only A's
    // anti-entropy can tell it about the pool.
    const c2 = await startNode("c", { port: cPort, owner: false, start: false });
    assert.equal(c2.address, cAddress);
    assert.equal(c2.replica.size, 0);
    await eventually(
      "C is caught up by anti-entropy",
      () => versionOf(c2, "ns/during-outage") === 2,
    );
    await Promise.all([a, b, c2].map((n) => n.stop()));
  });

  test("a peer removed from peers() is no longer pushed to", async () => {
    const [a, b, c] = (await cluster(["a", "b", "c"], { antiEntropyIntervalMs: 60_000 })) as [
      Node,
      Node,
      Node,
    ];
    own(a, counters("ns/before-removal", 1));
    await eventually("B and C have the first entry", () =>
      [b, c].every((n) => versionOf(n, "ns/before-removal") === 1),
    );
    a.peers = [b.address];
    own(a, counters("ns/after-removal", 1));
    await eventually("B has the second entry", () => versionOf(b, "ns/after-removal") === 1);
    // stop() waits for every push in flight: had A pushed to C, C would have it now.
    await a.stop();
    assert.equal(c.replica.get("ns/after-removal"), undefined);
    assert.equal(versionOf(c, "ns/before-removal"), 1);
    await Promise.all([b, c].map((n) => n.stop()));
  });

  test("unusable peer addresses are skipped and never break gossip with the good ones", async () => {
    const b = await startNode("b", { owner: false });
    const a = await startNode("a", { peers: ["", "127.0.0.1:1", b.address] });
    own(a, counters("ns/robust", 1));
    await eventually(
      "B has the entry despite the bad peers",
      () => versionOf(b, "ns/robust") === 1,
    );
    await eventually(
      "A counted failed pushes to the closed port",
      async () =>
        (await metric(a, "berth_gossip_pushes_failed_total", { peer: "127.0.0.1:1" })) >= 1,
    );
    await Promise.all([a, b].map((n) => n.stop()));
  });

  test("a Pull with a malformed continuation token is rejected with INVALID_ARGUMENT", async () => {
    const a = await startNode("a", { owner: false });
    const client = new GossipServiceClient(a.address, credentials.createInsecure());
    const err = await new Promise<ServiceError | null>((resolve) =>
      client.pull({ from: "test", pageToken: "not a token" }, new Metadata(), (e) => resolve(e)),
    );
    client.close();
    assert.equal(err?.code, status.INVALID_ARGUMENT);
    assert.equal(
      err?.details,
      'page_token: invalid page token "not a token": it contains characters outside the base64url alphabet; pass the next_page_token of a previous response unchanged',
    );
    await a.stop();
  });
});

describe("anti-entropy by digests: O(changes)", () => {
  const fast = { antiEntropyIntervalMs: 50, ownedRefreshIntervalMs: 100 };

  test("when nothing changes, rounds send digests only: no entry is pushed again", async () => {
    const [a, b] = (await cluster(["a", "b"], fast)) as [Node, Node];
    for (let i = 0; i < 200; i++) own(a, counters(`ns/q${i}`, 1));
    await eventually("B has all 200 pools", () => b.replica.size === 200);
    // Past the first rounds, which may repair buckets that deltas had not reached yet.
    await eventually(
      "A sent B a few digests",
      async () => (await metric(a, "berth_gossip_digests_sent_total", { peer: b.address })) >= 3,
    );
    const pushes = await metric(a, "berth_gossip_pushes_sent_total", { peer: b.address });
    const digests = await metric(a, "berth_gossip_digests_sent_total", { peer: b.address });
    await eventually(
      "five more rounds",
      async () =>
        (await metric(a, "berth_gossip_digests_sent_total", { peer: b.address })) >= digests + 5,
    );
    assert.equal(await metric(a, "berth_gossip_pushes_sent_total", { peer: b.address }), pushes);
    // The digests still confirm: B's copy stays fresh.
    const stale = b.replica.query({
      minUnits: 1,
      includeClosed: false,
      pageSize: 1000,
      pageToken: "",
    });
    assert.ok(stale.maxStaleMs < EVENTUALLY_MS, `staleness ${stale.maxStaleMs} ms`);
    await Promise.all([a, b].map((n) => n.stop()));
  });

  test("a lost delta is repaired: the differing bucket is pushed whole", async () => {
    const [a, b] = (await cluster(["a", "b"], fast)) as [Node, Node];
    own(a, counters("ns/lost", 1));
    own(a, counters("ns/kept", 1));
    await eventually(
      "B has both",
      () => versionOf(b, "ns/lost") === 1 && versionOf(b, "ns/kept") === 1,
    );
    // The delta goes nowhere: B is not a peer while it is published.
    const peers = a.peers;
    a.peers = [];
    own(a, counters("ns/lost", 2));
    await sleep(100);
    assert.equal(versionOf(b, "ns/lost"), 1);
    a.peers = peers;
    await eventually("B converges by anti-entropy", () => versionOf(b, "ns/lost") === 2);
    assert.ok((await metric(a, "berth_gossip_buckets_repaired_total", { peer: b.address })) >= 1);
    await Promise.all([a, b].map((n) => n.stop()));
  });

  test("a restarted owner with changes nobody saw converges its peers", async () => {
    const a = await startNode("a", { gossiper: fast });
    const b = await startNode("b", { owner: false, gossiper: fast });
    a.peers = [b.address];
    own(a, counters("ns/r", 1));
    await eventually("B has ns/r@1", () => versionOf(b, "ns/r") === 1);
    const port = Number(a.address.split(":")[1]);
    await a.stop();
    // Back under the same id, having committed versions 2 and 3 while down (no publish).
    const a2 = await startNode("a", { port, start: false, gossiper: fast });
    a2.peers = [b.address];
    a2.owned.set("ns/r", counters("ns/r", 3));
    await a2.gossiper.start();
    await eventually("B has ns/r@3 from the restarted owner", () => versionOf(b, "ns/r") === 3);
    await Promise.all([a2, b].map((n) => n.stop()));
  });

  test("a moved pool stays confirmed by its new owner after the old one stops", async () => {
    const [a, b, c] = (await cluster(["a", "b", "c"], fast)) as [Node, Node, Node];
    own(a, counters("ns/moving", 4));
    await eventually("B has ns/moving@4", () => versionOf(b, "ns/moving") === 4);
    // The shard moves: A lets go of it, C recovers it at the same version (no publish).
    a.owned.delete("ns/moving");
    c.owned.set("ns/moving", counters("ns/moving", 4));
    await sleep(300);
    await a.stop();
    const before = b.replica.get("ns/moving")?.confirmedAtMs ?? 0;
    await eventually(
      "C's digests keep confirming B's copy",
      () => (b.replica.get("ns/moving")?.confirmedAtMs ?? 0) > before + 100,
    );
    own(c, counters("ns/moving", 5));
    await eventually("B follows the new owner", () => versionOf(b, "ns/moving") === 5);
    await Promise.all([b, c].map((n) => n.stop()));
  });

  test("a retired pool's tombstone reaches a peer that missed it", async () => {
    const [a, b] = (await cluster(["a", "b"], fast)) as [Node, Node];
    own(a, counters("ns/gone", 1));
    await eventually("B has ns/gone", () => versionOf(b, "ns/gone") === 1);
    const peers = a.peers;
    a.peers = [];
    own(a, internal.PoolCounters.fromPartial({ pool: "ns/gone", version: 2, deleted: true }));
    await sleep(100);
    a.peers = peers;
    await eventually(
      "B has the tombstone",
      () => b.replica.get("ns/gone")?.counters.deleted === true,
    );
    const page = b.replica.query({ minUnits: 0, includeClosed: true, pageSize: 10, pageToken: "" });
    assert.deepEqual(page.pools, []);
    await Promise.all([a, b].map((n) => n.stop()));
  });

  test("a peer without Digest (an older build) still gets every owned entry", async () => {
    const a = await startNode("a", { gossiper: fast });
    own(a, counters("ns/old-peer", 1));
    // An older build: Push and Pull only.
    const replica = new Replica(Date.now);
    const handlers = new Gossiper({
      nodeId: "old",
      replica,
      peers: () => [],
      logger,
      registry: new Registry(),
    }).serviceHandlers();
    const server = new Server();
    server.addService(
      {
        push: GossipServiceService.push,
        pull: GossipServiceService.pull,
      },
      { push: handlers.push, pull: handlers.pull },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    replica.apply([counters("ns/on-old", 1)]);
    a.peers = [`127.0.0.1:${port}`];
    // A changed entry that was never published: only anti-entropy carries it.
    a.owned.set("ns/old-peer", counters("ns/old-peer", 2));
    await eventually(
      "the old peer has it",
      () => replica.get("ns/old-peer")?.counters.version === 2,
    );
    server.forceShutdown();
    await a.stop();
  });
});

describe("a read-only replica no owner pushes to (a gateway pod in Kubernetes)", () => {
  test("with pullIntervalMs it keeps up by pulling; without, it only has what it pulled at start", async () => {
    const owner = await startNode("kw-0");
    own(owner, counters("ns/early", 1));
    // Owners do not list these nodes as peers: nothing is pushed to them.
    const pulling = await startNode("gw-pull", {
      peers: [owner.address],
      owner: false,
      gossiper: { pullIntervalMs: 50 },
    });
    const startOnly = await startNode("gw-once", { peers: [owner.address], owner: false });
    assert.equal(versionOf(pulling, "ns/early"), 1);
    assert.equal(versionOf(startOnly, "ns/early"), 1);
    own(owner, counters("ns/early", 2));
    own(owner, counters("ns/late", 1));
    await eventually(
      "the pulling replica has the later changes",
      () => versionOf(pulling, "ns/early") === 2 && versionOf(pulling, "ns/late") === 1,
    );
    assert.equal(versionOf(startOnly, "ns/late"), undefined, "no pull, no push: never learns");
  });
});
