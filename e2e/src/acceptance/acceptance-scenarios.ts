// The acceptance scenarios of issue 2 ("Done means"), against a real local cluster
// (gateway and worker processes) through real grpc-js clients. Journal-agnostic:
// `acceptanceScenarios(name, startCluster)` registers them for any cluster factory
// (SQLite in local-sqlite.int.test.ts; Cassandra later). No assertion is about
// time: bounds below are only how long to wait before calling something broken,
// and the propagation times of the visibility scenario are recorded, not asserted.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { after, before, describe, test } from "node:test";
import { type ParsedRichStatus, parseRichStatus } from "@berth/common";
import type { LocalCluster } from "@berth/local";
import { encodeReservationId, shardOf, type v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import {
  BAD_INPUT_POOL,
  CRASH_POOLS,
  MOVING_POOL,
  OVERSELL_CAPACITY,
  OVERSELL_POOL,
  VISIBILITY_CAPACITY,
  VISIBILITY_POOL,
  VISIBILITY_SELECTOR,
} from "./acceptance-cluster.js";
import {
  CapacityApi,
  codeName,
  DEFAULT_DEADLINE_MS,
  eventually,
  failureOf,
  GossipReader,
} from "./clients.js";

const SCENARIO_TIMEOUT_MS = 180_000;

/** Prints one JSON line of figures: the suite's output is where they are read. */
function record(figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ acceptance: true, ...figures }));
}

function outcomeKey(s: ParsedRichStatus): string {
  return `${codeName(s.code)}/${s.reason ?? "-"}`;
}

function countBy<T>(items: Iterable<T>, key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) {
    const k = key(item);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** Runs `work` over `items` with at most `concurrency` in flight. */
async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await work(item);
      }
    }),
  );
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of the gateway and every worker, by name. */
function pids(cluster: LocalCluster): Record<string, number | undefined> {
  return Object.fromEntries([
    ["gateway", cluster.gatewayPid],
    ...cluster.workers.map((w) => [w.id, w.pid] as const),
  ]);
}

function ownerOf(cluster: LocalCluster, pool: string): { shard: number; owner: string } {
  const map = cluster.shardMap();
  const shard = shardOf(pool, map.shardCount);
  return { shard, owner: map.shards[shard]?.owner ?? "" };
}

/** Every character of `id` replaced, one at a time, by another of the same kind. */
function singleCharacterCorruptions(id: string): string[] {
  const swap = (c: string): string => {
    if (c >= "0" && c <= "8") return String.fromCharCode(c.charCodeAt(0) + 1);
    if (c === "9") return "0";
    if (c >= "a" && c < "z") return String.fromCharCode(c.charCodeAt(0) + 1);
    if (c === "z") return "a";
    if (c >= "A" && c < "Z") return String.fromCharCode(c.charCodeAt(0) + 1);
    if (c === "Z") return "A";
    if (c === "-") return "_";
    if (c === "_") return "-";
    return "x";
  };
  return [...id].map((c, i) => id.slice(0, i) + swap(c) + id.slice(i + 1));
}

/** A bad request and the precise status it must get. */
interface BadCase {
  readonly what: string;
  readonly call: () => Promise<unknown>;
  readonly code: grpc.status;
  readonly reason: string;
  /** ErrorInfo metadata "field" (INVALID_ARGUMENT only). */
  readonly field?: string;
  /** What the status message must say. */
  readonly message: RegExp;
}

/**
 * Registers the acceptance scenarios.
 *
 * @param name the journal (or setup) they run on, e.g. "sqlite"; used in titles and figures
 * @param startCluster starts a NEW cluster with the pools of `acceptancePoolsYaml()`
 *   (see `startAcceptanceCluster`) and an EMPTY journal on each call (for Cassandra: a
 *   fresh keyspace per call, else the pools keep the previous run's reservations and
 *   request ids); `stop()` must clean up after it. It is called twice: once for the
 *   scenarios that share a cluster, once for the kill -9 scenario, never with two
 *   clusters running at once.
 */
export function acceptanceScenarios(name: string, startCluster: () => Promise<LocalCluster>): void {
  describe(`acceptance on ${name}: scenarios sharing one cluster`, () => {
    let cluster: LocalCluster;
    let api: CapacityApi;

    before(async () => {
      cluster = await startCluster();
      api = new CapacityApi(cluster.gatewayAddress);
    });

    after(async () => {
      api?.close();
      await cluster?.stop();
    });

    test("500 concurrent single-unit reserves on a pool of 100 give exactly 100 reservations and 400 INSUFFICIENT_CAPACITY", {
      timeout: SCENARIO_TIMEOUT_MS,
    }, async () => {
      const attempts = 500;
      const results = await Promise.allSettled(
        Array.from({ length: attempts }, (_, i) =>
          api.reserve({ pool: OVERSELL_POOL, units: 1, requestId: `oversell-${i}` }, 60_000),
        ),
      );
      const granted: v1.ReserveResponse[] = [];
      const refused: ParsedRichStatus[] = [];
      for (const r of results) {
        if (r.status === "fulfilled") granted.push(r.value);
        else refused.push(parseRichStatus(r.reason));
      }
      assert.deepEqual(
        { OK: granted.length, ...countBy(refused, outcomeKey) },
        {
          OK: OVERSELL_CAPACITY,
          "FAILED_PRECONDITION/INSUFFICIENT_CAPACITY": attempts - OVERSELL_CAPACITY,
        },
      );
      for (const s of refused) {
        assert.equal(s.domain, "berth.dev");
        assert.match(s.message, /capacity|available/i);
      }
      for (const g of granted) {
        assert.equal(g.pool, OVERSELL_POOL);
        assert.equal(g.units, 1);
        assert.equal(g.replayed, false);
      }
      assert.equal(
        new Set(granted.map((g) => g.reservationId)).size,
        OVERSELL_CAPACITY,
        "every reservation id is distinct",
      );

      const pool = await api.getPool(OVERSELL_POOL);
      assert.deepEqual(
        {
          capacity: pool.capacity,
          reserved: pool.reserved,
          available: pool.available,
          activeReservations: pool.activeReservations,
          overCommitted: pool.overCommitted,
        },
        {
          capacity: OVERSELL_CAPACITY,
          reserved: OVERSELL_CAPACITY,
          available: 0,
          activeReservations: OVERSELL_CAPACITY,
          overCommitted: false,
        },
      );
      record({ scenario: "oversell", journal: name, attempts, granted: granted.length });
    });

    test("bad input gets its precise status code and every process keeps serving", {
      timeout: SCENARIO_TIMEOUT_MS,
    }, async () => {
      const before = pids(cluster);
      const valid = await api.reserve({ pool: BAD_INPUT_POOL, units: 1, requestId: "valid-1" });
      const id = valid.reservationId;
      const unknownPool = `acceptance/no-such-pool`;
      const forgedSecret = randomBytes(16).toString("base64url");
      const invalid = (what: string, field: string, call: () => Promise<unknown>): BadCase => ({
        what,
        call,
        code: grpc.status.INVALID_ARGUMENT,
        reason: "INVALID_FIELD",
        field,
        message: new RegExp(`^invalid ${field.replace(".", "\\.")}: `),
      });
      const release = (rid: string) => () => api.release(rid);
      const reserve = (r: Partial<v1.ReserveRequest>) => () =>
        api.reserve({ pool: BAD_INPUT_POOL, units: 1, requestId: "bad-1", ...r });
      const availability = (r: Partial<v1.GetAvailabilityRequest>) => () => api.getAvailability(r);
      const window = (startS: number, endS: number) => ({
        start: { seconds: startS, nanos: 0 },
        end: { seconds: endS, nanos: 0 },
      });
      const cases: BadCase[] = [
        invalid("a garbage reservation id", "reservation_id", release("not-a-reservation-id")),
        invalid("a truncated reservation id", "reservation_id", release(id.slice(0, -1))),
        invalid("a 10 kB reservation id", "reservation_id", release(`r1.${"A".repeat(10_240)}`)),
        invalid("an empty reservation id", "reservation_id", release("")),
        {
          what: "a well-formed reservation id of an unknown pool",
          call: release(encodeReservationId(unknownPool, 1, forgedSecret)),
          code: grpc.status.NOT_FOUND,
          reason: "POOL_NOT_FOUND",
          message: /no-such-pool/,
        },
        {
          what: "a well-formed reservation id unknown in its pool",
          call: release(encodeReservationId(BAD_INPUT_POOL, 999_999, forgedSecret)),
          code: grpc.status.NOT_FOUND,
          reason: "RESERVATION_NOT_FOUND",
          message: /reservation/i,
        },
        {
          what: "a reserve on an unknown pool",
          call: reserve({ pool: unknownPool }),
          code: grpc.status.NOT_FOUND,
          reason: "POOL_NOT_FOUND",
          message: /no-such-pool/,
        },
        {
          what: "GetPool of an unknown pool",
          call: () => api.getPool(unknownPool),
          code: grpc.status.NOT_FOUND,
          reason: "POOL_NOT_FOUND",
          message: /no-such-pool/,
        },
        invalid("units 0", "units", reserve({ units: 0 })),
        invalid("units -1", "units", reserve({ units: -1 })),
        invalid("units 1,000,001", "units", reserve({ units: 1_000_001 })),
        invalid("an empty request_id", "request_id", reserve({ requestId: "" })),
        invalid(
          "a 129-character request_id",
          "request_id",
          reserve({ requestId: "r".repeat(129) }),
        ),
        invalid(
          "a request_id with a control character",
          "request_id",
          reserve({ requestId: "a\nb" }),
        ),
        invalid(
          "a 1 kB pool id on Reserve",
          "pool",
          reserve({ pool: `acceptance/${"a".repeat(1013)}` }),
        ),
        invalid("a 1 kB pool id on GetPool", "pool", () =>
          api.getPool(`acceptance/${"a".repeat(1013)}`),
        ),
        invalid("a pool id without a namespace", "pool", reserve({ pool: "no-namespace" })),
        invalid(
          "a bad label selector",
          "label_selector",
          availability({ labelSelector: "zone in (north" }),
        ),
        invalid("a bad page token", "page_token", availability({ pageToken: "not a token!" })),
        invalid(
          "a window whose start is after its end",
          "window",
          availability({ window: window(1_800_000_000, 1_700_000_000) }),
        ),
        invalid("page_size 1,001", "page_size", availability({ pageSize: 1001 })),
        invalid("min_units -1", "min_units", availability({ minUnits: -1 })),
      ];

      const mismatches: string[] = [];
      for (const c of cases) {
        const s = await failureOf(c.call(), c.what);
        const got = {
          code: codeName(s.code),
          reason: s.reason,
          field: s.metadata.field,
          message: c.message.test(s.message),
        };
        const want = {
          code: codeName(c.code),
          reason: c.reason,
          field: c.field,
          message: true,
        };
        try {
          assert.deepEqual(got, want);
        } catch {
          mismatches.push(
            `${c.what}: got ${JSON.stringify({ ...got, message: s.message })}, want ${JSON.stringify({ ...want, message: String(c.message) })}`,
          );
        }
      }
      // A corrupted id is malformed (INVALID_ARGUMENT) or names nothing (NOT_FOUND): it
      // never releases anything, and the reservation it came from stays reserved.
      for (const [i, bad] of singleCharacterCorruptions(id).entries()) {
        const s = await failureOf(
          api.release(bad),
          `the reservation id with character ${i} changed`,
        );
        if (s.code !== grpc.status.INVALID_ARGUMENT && s.code !== grpc.status.NOT_FOUND) {
          mismatches.push(`character ${i} changed: got ${codeName(s.code)} ${s.message}`);
        }
      }
      assert.deepEqual(mismatches, [], `${mismatches.length} of ${cases.length} cases`);

      // Still serving, with nothing crashed and nothing corrupted: the failed
      // releases released nothing.
      const good = await api.reserve({ pool: BAD_INPUT_POOL, units: 2, requestId: "valid-2" });
      assert.equal(good.units, 2);
      assert.equal(good.replayed, false);
      const pool = await api.getPool(BAD_INPUT_POOL);
      assert.equal(pool.reserved, 3);
      assert.equal(pool.activeReservations, 2);
      const released = await api.release(id);
      assert.equal(released.alreadyReleased, false);
      assert.equal(released.units, 1);
      assert.deepEqual(pids(cluster), before, "no process was restarted");
      for (const [proc, pid] of Object.entries(before)) {
        assert.ok(pid !== undefined && processAlive(pid), `${proc} (pid ${pid}) is alive`);
      }
      assert.deepEqual(
        cluster.workers.map((w) => w.restarts),
        cluster.workers.map(() => 0),
      );
      record({ scenario: "bad input", journal: name, cases: cases.length });
    });

    test("a reservation becomes visible in the availability of the gateway and of every worker", {
      timeout: SCENARIO_TIMEOUT_MS,
    }, async () => {
      const gossip = cluster.workers.map((w) => ({
        node: w.id,
        reader: new GossipReader(w.grpcAddress, cluster.clusterId),
      }));
      try {
        const onGateway = async (): Promise<v1.PoolAvailability | undefined> => {
          const r = await api.getAvailability({
            labelSelector: VISIBILITY_SELECTOR,
            includeClosed: true,
          });
          return r.pools.find((p) => p.pool === VISIBILITY_POOL);
        };
        const onWorker = async (reader: GossipReader) =>
          (await reader.pullAll()).find((e) => e.pool === VISIBILITY_POOL);

        // Every node knows the configured pool before the reservation is made.
        await eventually("the gateway lists the configured pool", async () => {
          const p = await onGateway();
          return p !== undefined && p.reserved === 0 && p.available === VISIBILITY_CAPACITY;
        });
        for (const { node, reader } of gossip) {
          await eventually(`${node} has the configured pool in its replica`, async () => {
            const e = await onWorker(reader);
            return e !== undefined && e.capacity === VISIBILITY_CAPACITY;
          });
        }

        const units = 3;
        const sentAt = performance.now();
        const ack = await api.reserve({ pool: VISIBILITY_POOL, units, requestId: "visible-1" });
        const ackedAt = performance.now();
        const version = ack.version;
        const propagation: Record<string, number> = {};
        const seen = async (node: string, check: () => Promise<boolean>) => {
          await eventually(`${node} shows version ${version}`, check, 30_000, 5);
          propagation[node] = Math.round((performance.now() - ackedAt) * 10) / 10;
        };
        let gatewayView: v1.PoolAvailability | undefined;
        const workerViews = new Map<string, { reserved: number; capacity: number }>();
        await Promise.all([
          seen("gateway", async () => {
            gatewayView = await onGateway();
            return gatewayView !== undefined && gatewayView.version >= version;
          }),
          ...gossip.map(({ node, reader }) =>
            seen(node, async () => {
              const e = await onWorker(reader);
              if (e === undefined || e.version < version) return false;
              workerViews.set(node, e);
              return true;
            }),
          ),
        ]);
        assert.ok(gatewayView !== undefined);
        assert.equal(gatewayView.reserved, units);
        assert.equal(gatewayView.available, VISIBILITY_CAPACITY - units);
        for (const { node } of gossip) {
          const e = workerViews.get(node);
          assert.deepEqual(
            { reserved: e?.reserved, capacity: e?.capacity },
            { reserved: units, capacity: VISIBILITY_CAPACITY },
            node,
          );
        }
        record({
          scenario: "visibility",
          journal: name,
          owner: ownerOf(cluster, VISIBILITY_POOL).owner,
          version,
          reserveRoundTripMs: Math.round((ackedAt - sentAt) * 10) / 10,
          propagationMsAfterAck: propagation,
        });
      } finally {
        for (const { reader } of gossip) reader.close();
      }
    });

    test("a reserve retried after its pool's shard moved returns the same reservation and release stays idempotent", {
      timeout: SCENARIO_TIMEOUT_MS,
    }, async () => {
      const { shard, owner } = ownerOf(cluster, MOVING_POOL);
      const target = cluster.workers.find((w) => w.id !== owner)?.id;
      assert.ok(owner !== "" && target !== undefined, "the pool has an owner and another worker");
      const request = { pool: MOVING_POOL, units: 2, requestId: "move-x" };
      const first = await api.reserve(request);
      assert.equal(first.replayed, false);

      const move = await cluster.moveShard(shard, target);
      assert.deepEqual(
        { shard: move.shard, from: move.from, to: move.to, changed: move.changed },
        { shard, from: owner, to: target, changed: true },
      );
      assert.equal(ownerOf(cluster, MOVING_POOL).owner, target);

      const retried = await api.reserve(request);
      assert.deepEqual(
        {
          reservationId: retried.reservationId,
          replayed: retried.replayed,
          units: retried.units,
          pool: retried.pool,
        },
        { reservationId: first.reservationId, replayed: true, units: 2, pool: MOVING_POOL },
      );
      let pool = await api.getPool(MOVING_POOL);
      assert.deepEqual(
        {
          owner: pool.owner,
          shard: pool.shard,
          epoch: pool.epoch,
          reserved: pool.reserved,
          activeReservations: pool.activeReservations,
        },
        { owner: target, shard, epoch: move.epoch, reserved: 2, activeReservations: 1 },
      );

      const released = await api.release(first.reservationId);
      assert.deepEqual(
        { alreadyReleased: released.alreadyReleased, units: released.units, pool: released.pool },
        { alreadyReleased: false, units: 2, pool: MOVING_POOL },
      );
      const again = await api.release(first.reservationId);
      assert.deepEqual(
        { alreadyReleased: again.alreadyReleased, units: again.units, pool: again.pool },
        { alreadyReleased: true, units: 2, pool: MOVING_POOL },
      );
      pool = await api.getPool(MOVING_POOL);
      assert.deepEqual(
        {
          owner: pool.owner,
          reserved: pool.reserved,
          available: pool.available,
          activeReservations: pool.activeReservations,
        },
        { owner: target, reserved: 0, available: pool.capacity, activeReservations: 0 },
      );
      record({
        scenario: "shard move",
        journal: name,
        pool: MOVING_POOL,
        shard,
        from: owner,
        to: target,
        epoch: move.epoch,
      });
    });
  });

  describe(`acceptance on ${name}: a cluster of its own`, () => {
    let cluster: LocalCluster;
    let api: CapacityApi;

    before(async () => {
      cluster = await startCluster();
      api = new CapacityApi(cluster.gatewayAddress);
    });

    after(async () => {
      api?.close();
      await cluster?.stop();
    });

    test("kill -9 of each worker in turn under load loses no acknowledged reservation and duplicates none", {
      timeout: SCENARIO_TIMEOUT_MS,
    }, async () => {
      await killUnderLoad(name, cluster, api);
    });
  });
}

interface Acked {
  readonly pool: string;
  readonly units: number;
  readonly reservationId: string;
}

interface Attempt {
  readonly pool: string;
  readonly units: number;
}

/** Codes after which the same request_id will not succeed on a retry. */
const DEFINITIVE = new Set<number>([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.ALREADY_EXISTS,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNIMPLEMENTED,
]);

async function killUnderLoad(name: string, cluster: LocalCluster, api: CapacityApi) {
  const callers = 16;
  const impatientCallers = 2;
  const impatientDeadlineMs = 200;
  /** Acknowledgements to wait for before each kill and after each restart. */
  const ackedPerPhase = 150;
  /** Of those after a restart, how many must be on the restarted worker's pools. */
  const victimAckedAfterRestart = 20;

  // Every worker owns some of the stream's pools (checked against the running
  // cluster's ShardMap), so each kill hits pools that are being written.
  const owners = new Map<string, string[]>(cluster.workers.map((w) => [w.id, []]));
  for (const pool of CRASH_POOLS) owners.get(ownerOf(cluster, pool).owner)?.push(pool);
  for (const [worker, pools] of owners) {
    assert.ok(pools.length > 0, `${worker} owns some of the stream's pools`);
  }
  const pidsBefore = pids(cluster);

  const acked = new Map<string, Acked>();
  const errored = new Map<string, Attempt & { readonly status: ParsedRichStatus }>();
  let replayedInStream = 0;
  let issued = 0;
  let stop = false;
  /** Which restart the stream is after: acknowledgements are counted per phase. */
  let phase = 0;
  const ackedInPhase = new Map<number, { all: number; byPool: Map<string, number> }>();

  const caller = async (deadlineMs: number) => {
    while (!stop) {
      const n = issued++;
      const pool = CRASH_POOLS[n % CRASH_POOLS.length] as string;
      const units = 1 + (n % 3);
      const requestId = `crash-${n}`;
      const issuedIn = phase;
      try {
        const r = await api.reserve({ pool, units, requestId }, deadlineMs);
        assert.deepEqual({ pool: r.pool, units: r.units }, { pool, units }, requestId);
        if (r.replayed) replayedInStream++;
        acked.set(requestId, { pool, units, reservationId: r.reservationId });
        let counts = ackedInPhase.get(issuedIn);
        if (counts === undefined) {
          counts = { all: 0, byPool: new Map() };
          ackedInPhase.set(issuedIn, counts);
        }
        counts.all++;
        counts.byPool.set(pool, (counts.byPool.get(pool) ?? 0) + 1);
      } catch (e: unknown) {
        if (e instanceof assert.AssertionError) throw e;
        errored.set(requestId, { pool, units, status: parseRichStatus(e) });
      }
    }
  };
  const stream = Promise.all([
    ...Array.from({ length: callers }, () => caller(DEFAULT_DEADLINE_MS)),
    // Impatient callers give up long before a killed worker is back: their
    // requests end with an outcome unknown to the client (the gateway or the
    // owner may still commit them), which the settling below must account for.
    ...Array.from({ length: impatientCallers }, () => caller(impatientDeadlineMs)),
  ]);
  // A caller that throws ends the stream early: surface it instead of waiting.
  let streamError: unknown;
  stream.catch((e: unknown) => {
    streamError = e;
    stop = true;
  });
  const streamed = (done: () => boolean) => async () => {
    if (streamError !== undefined) throw streamError;
    return done();
  };
  const ackedIn = (p: number, pools?: ReadonlySet<string>) => {
    const counts = ackedInPhase.get(p);
    if (counts === undefined) return 0;
    if (pools === undefined) return counts.all;
    let n = 0;
    for (const pool of pools) n += counts.byPool.get(pool) ?? 0;
    return n;
  };

  try {
    const kills: Record<string, unknown>[] = [];
    await eventually(
      `${ackedPerPhase} reserves are acknowledged`,
      streamed(() => ackedIn(0) >= ackedPerPhase),
      60_000,
    );
    for (const victim of cluster.workers) {
      const victimPid = victim.pid;
      assert.ok(victimPid !== undefined, `${victim.id} is up`);
      const victimPools = new Set(owners.get(victim.id));
      const ackedBeforeKill = acked.size;
      const erroredBeforeKill = errored.size;
      cluster.killWorker(victim.id, "SIGKILL");
      const newPid = await cluster.waitForWorkerRestart(victim.id, 60_000);
      phase++;
      const p = phase;
      assert.notEqual(newPid, victimPid, `${victim.id} came back as a new process`);
      assert.equal(processAlive(victimPid), false, `the killed ${victim.id} is gone`);
      await eventually(
        `${ackedPerPhase} reserves issued after ${victim.id}'s restart are acknowledged, ${victimAckedAfterRestart} of them on its pools`,
        streamed(
          () => ackedIn(p) >= ackedPerPhase && ackedIn(p, victimPools) >= victimAckedAfterRestart,
        ),
        60_000,
      );
      kills.push({
        victim: victim.id,
        victimPools: victimPools.size,
        ackedBeforeKill,
        erroredDuringKill: errored.size - erroredBeforeKill,
      });
    }
    stop = true;
    await stream;
    for (const w of cluster.workers) {
      assert.notEqual(w.pid, pidsBefore[w.id], `${w.id} was restarted`);
    }
    assert.equal(cluster.gatewayPid, pidsBefore.gateway, "the gateway was not restarted");

    // Settle every request whose outcome the client does not know: retry it with
    // the same request_id until it succeeds or is definitively rejected.
    const erroredByCode = countBy(errored.values(), (a) => outcomeKey(a.status));
    const acknowledgedInStream = acked.size;
    let retriedCommittedBefore = 0;
    let retriedFresh = 0;
    const rejected: string[] = [];
    await forEachConcurrently([...errored.entries()], callers, async ([requestId, a]) => {
      for (let attempt = 1; ; attempt++) {
        try {
          const r = await api.reserve({ pool: a.pool, units: a.units, requestId });
          assert.deepEqual({ pool: r.pool, units: r.units }, { pool: a.pool, units: a.units });
          if (r.replayed) retriedCommittedBefore++;
          else retriedFresh++;
          acked.set(requestId, { pool: a.pool, units: a.units, reservationId: r.reservationId });
          return;
        } catch (e: unknown) {
          if (e instanceof assert.AssertionError) throw e;
          const s = parseRichStatus(e);
          if (DEFINITIVE.has(s.code)) {
            rejected.push(`${requestId}: ${outcomeKey(s)} ${s.message}`);
            return;
          }
          if (attempt >= 20) {
            assert.fail(`${requestId} still fails after ${attempt} retries: ${outcomeKey(s)}`);
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    });
    // Capacity is never the limit here, so nothing is definitively rejected.
    assert.deepEqual(rejected, []);

    // Every acknowledged reservation is there, and nothing else.
    const expected = new Map<string, { reserved: number; active: number }>(
      CRASH_POOLS.map((pool) => [pool, { reserved: 0, active: 0 }]),
    );
    for (const a of acked.values()) {
      const e = expected.get(a.pool) as { reserved: number; active: number };
      e.reserved += a.units;
      e.active += 1;
    }
    const actual = async () => {
      const out = new Map<string, { reserved: number; active: number }>();
      for (const p of CRASH_POOLS) {
        const pool = await api.getPool(p);
        out.set(p, { reserved: pool.reserved, active: pool.activeReservations });
      }
      return out;
    };
    assert.deepEqual(await actual(), expected);
    const reservationIds = new Set([...acked.values()].map((a) => a.reservationId));
    const duplicates = acked.size - reservationIds.size;
    assert.equal(duplicates, 0, "every acknowledged request has its own reservation");

    // Retrying every acknowledged request returns the same reservation, reserving nothing.
    const mismatched: string[] = [];
    await forEachConcurrently([...acked.entries()], callers, async ([requestId, a]) => {
      const r = await api.reserve({ pool: a.pool, units: a.units, requestId });
      if (r.reservationId !== a.reservationId || !r.replayed || r.units !== a.units) {
        mismatched.push(
          `${requestId}: ${JSON.stringify({ id: r.reservationId, replayed: r.replayed, units: r.units })}, want ${a.reservationId}`,
        );
      }
    });
    assert.deepEqual(mismatched, []);
    assert.deepEqual(await actual(), expected, "the replays reserved nothing");

    record({
      scenario: "kill -9",
      journal: name,
      pools: CRASH_POOLS.length,
      callers,
      impatientCallers: { count: impatientCallers, deadlineMs: impatientDeadlineMs },
      kills,
      issued,
      acknowledgedInStream,
      replayedInStream,
      errored: errored.size,
      erroredByCode,
      retriedCommittedBefore,
      retriedFresh,
      acknowledgedTotal: acked.size,
      unitsReserved: [...expected.values()].reduce((sum, e) => sum + e.reserved, 0),
      replaysChecked: acked.size,
      duplicates,
    });
  } finally {
    stop = true;
    await stream.catch(() => undefined);
  }
}
