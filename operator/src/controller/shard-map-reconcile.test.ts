import assert from "node:assert/strict";
import { test } from "node:test";
import { findCondition, type ShardMapObject } from "@berth/kubernetes";
import type { internal } from "@berth/proto";
import type { ShardReport } from "../planning/hand-off.js";
import type { ObservedMember } from "./membership.js";
import {
  reconcileShardMap,
  type ShardMapAction,
  type ShardMapObservation,
} from "./shard-map-reconcile.js";

const S = 16;
const member = (id: string, live = true): ObservedMember => ({
  id,
  address: `${id}:7000`,
  live,
  expiresInMs: live ? 5_000 : 0,
  renewedAgoMs: live ? 100 : 10_000,
});

const observe = (o: Partial<ShardMapObservation>): ShardMapObservation => ({
  resource: undefined,
  namespace: "berth",
  name: "berth",
  shardCount: S,
  defaultQuorum: 2,
  members: [],
  reports: new Map(),
  leaving: new Set(),
  maxMovesInProgress: 1_000,
  now: "2030-01-01T00:00:00Z",
  ...o,
});

function created(o: ShardMapObservation): ShardMapObject {
  const a = reconcileShardMap(o);
  assert.equal(a.kind, "create");
  if (a.kind !== "create") throw new Error("unreachable");
  return { ...a.object, metadata: { ...a.object.metadata, generation: 1 } };
}

/** The resource after a status write, as the informer would return it. */
function written(resource: ShardMapObject, a: ShardMapAction): ShardMapObject {
  assert.equal(a.kind, "write-status", JSON.stringify(a).slice(0, 200));
  if (a.kind !== "write-status") throw new Error("unreachable");
  return { ...resource, status: a.status };
}

const serving = (m: internal.ShardMap): Map<number, ShardReport> =>
  new Map(
    m.shards
      .filter((s) => s.owner !== "")
      .map((s) => [s.shard, { owner: s.owner, epoch: s.epoch, state: "serving" as const }]),
  );

test("a missing ShardMap is created with the shard count and the default quorum", () => {
  const object = created(observe({}));
  assert.deepEqual(object.spec, { shardCount: S, quorum: 2 });
  assert.equal(object.metadata.namespace, "berth");
});

test("a new map assigns every shard once quorum is live; reconciling again changes nothing", () => {
  let resource = created(observe({}));
  const members = [member("w0"), member("w1"), member("w2")];
  const first = reconcileShardMap(observe({ resource, members }));
  resource = written(resource, first);
  assert.equal(resource.status?.revision, 1);
  assert.ok(resource.status?.shards?.every((s) => s.owner !== "" && s.epoch === 1));
  assert.equal(findCondition(resource.status?.conditions, "QuorumLost")?.status, "False");
  assert.equal(resource.status?.liveMembers, 3);
  const map = first.kind === "write-status" ? first.map : assert.fail();
  const reports = serving(map);
  // Owners report serving: Progressing settles (a status write, no new revision)...
  const settled = reconcileShardMap(observe({ resource, members, reports }));
  resource = written(resource, settled);
  assert.equal(resource.status?.revision, 1);
  assert.equal(findCondition(resource.status?.conditions, "Progressing")?.status, "False");
  // ...and then nothing changes, however often it runs.
  for (const now of ["2030-01-01T00:00:05Z", "2031-01-01T00:00:00Z"]) {
    assert.equal(reconcileShardMap(observe({ resource, members, reports, now })).kind, "none");
  }
});

test("below quorum nothing is assigned and QuorumLost is set once; a returning member resumes", () => {
  let resource = created(observe({}));
  const alone = [member("w0"), member("w1", false), member("w2", false)];
  const lost = reconcileShardMap(observe({ resource, members: alone }));
  assert.equal(lost.kind === "write-status" && lost.quorumChanged, true);
  resource = written(resource, lost);
  assert.equal(findCondition(resource.status?.conditions, "QuorumLost")?.status, "True");
  assert.ok(
    (resource.status?.shards ?? []).every((s) => s.owner === ""),
    "frozen: no owner",
  );
  assert.equal(reconcileShardMap(observe({ resource, members: alone })).kind, "none");
  const back = [member("w0"), member("w1"), member("w2", false)];
  const resumed = reconcileShardMap(observe({ resource, members: back }));
  resource = written(resource, resumed);
  assert.equal(findCondition(resource.status?.conditions, "QuorumLost")?.status, "False");
  assert.equal(resource.status?.revision, 1);
  assert.ok((resource.status?.shards ?? []).every((s) => s.owner === "w0" || s.owner === "w1"));
});

test("a status the operator cannot read is never overwritten", () => {
  const resource: ShardMapObject = {
    ...created(observe({})),
    status: {
      revision: 4,
      shards: [{ shard: 0, owner: "w0", epoch: 3, state: "Active" }],
      members: [{ id: "w0", address: "w0:7000", live: true }],
    },
  };
  const a = reconcileShardMap(observe({ resource, members: [member("w0"), member("w1")] }));
  assert.equal(a.kind, "unusable");
});

test("a leaving worker's shards drain first, and move once it reports them drained", () => {
  let resource = created(observe({}));
  const members = [member("w0"), member("w1"), member("w2")];
  const first = reconcileShardMap(observe({ resource, members }));
  resource = written(resource, first);
  const map = first.kind === "write-status" ? first.map : assert.fail();
  const leaving = new Set(["w1"]);
  const step = reconcileShardMap(observe({ resource, members, reports: serving(map), leaving }));
  resource = written(resource, step);
  const draining = (resource.status?.shards ?? []).filter((s) => s.state === "Draining");
  assert.ok(draining.length > 0 && draining.every((s) => s.owner === "w1"));
  const drainedReports = new Map(serving(map));
  for (const s of draining)
    drainedReports.set(s.shard, { owner: "w1", epoch: s.epoch, state: "drained" });
  const moved = reconcileShardMap(observe({ resource, members, reports: drainedReports, leaving }));
  resource = written(resource, moved);
  assert.ok((resource.status?.shards ?? []).every((s) => s.owner !== "w1"));
});
