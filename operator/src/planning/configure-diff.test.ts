// "Reconcile twice changes nothing", once for both modes: the operator's pool
// reconcile (with placement) and local mode's pool sync (without) decide through
// configuresNeeded.
import assert from "node:assert/strict";
import { test } from "node:test";
import { internal } from "@berth/proto";
import {
  type AcceptedSpec,
  configuresNeeded,
  type PendingConfigure,
  type Placement,
  specKey,
} from "./configure-diff.js";

const spec = (pool: string, over: Partial<internal.PoolSpec> = {}): internal.PoolSpec =>
  internal.PoolSpec.fromPartial({ pool, capacity: 10, labels: { tier: "gold" }, ...over });
const at = (owner: string, epoch: number): Placement => ({ owner, epoch });

interface Row {
  readonly name: string;
  readonly desired: readonly internal.PoolSpec[];
  /** Accepted before the first reconcile, by pool. */
  readonly accepted: Readonly<Record<string, AcceptedSpec>>;
  /** Omitted: local mode (the Router places the calls). */
  readonly placement?: Readonly<Record<string, Placement>>;
  /** Pools the first reconcile sends. */
  readonly first: readonly string[];
}

const a = spec("ns/a");
const b = spec("ns/b");
const TABLE: readonly Row[] = [
  { name: "new pools, local", desired: [a, b], accepted: {}, first: ["ns/a", "ns/b"] },
  {
    name: "new pools, operator",
    desired: [a, b],
    accepted: {},
    placement: { "ns/a": at("w0", 1), "ns/b": at("w1", 3) },
    first: ["ns/a", "ns/b"],
  },
  {
    name: "unchanged specs, local",
    desired: [a, b],
    accepted: { "ns/a": { key: specKey(a) }, "ns/b": { key: specKey(b) } },
    first: [],
  },
  {
    name: "labels in another order are the same spec",
    desired: [spec("ns/a", { labels: { x: "1", y: "2" } })],
    accepted: { "ns/a": { key: specKey(spec("ns/a", { labels: { y: "2", x: "1" } })) } },
    first: [],
  },
  {
    name: "a changed capacity, window, closed, generation or deletion is sent again",
    desired: [
      spec("ns/c", { capacity: 11 }),
      spec("ns/w", {
        window: { start: { seconds: 0, nanos: 0 }, end: { seconds: 60, nanos: 0 } },
      }),
      spec("ns/x", { closed: true }),
      spec("ns/g", { generation: 2 }),
      spec("ns/d", { deleted: true }),
      a,
    ],
    accepted: Object.fromEntries(
      ["ns/c", "ns/w", "ns/x", "ns/g", "ns/d", "ns/a"].map((p) => [p, { key: specKey(spec(p)) }]),
    ),
    first: ["ns/c", "ns/w", "ns/x", "ns/g", "ns/d"],
  },
  {
    name: "operator: a spec accepted by a former owner or at an older epoch is sent again",
    desired: [a, b],
    accepted: {
      "ns/a": { key: specKey(a), owner: "w0", epoch: 1 },
      "ns/b": { key: specKey(b), owner: "w1", epoch: 3 },
    },
    placement: { "ns/a": at("w1", 2), "ns/b": at("w1", 4) },
    first: ["ns/a", "ns/b"],
  },
  {
    name: "operator: in force on its owner at its epoch",
    desired: [a],
    accepted: { "ns/a": { key: specKey(a), owner: "w0", epoch: 1 } },
    placement: { "ns/a": at("w0", 1) },
    first: [],
  },
];

for (const row of TABLE) {
  test(`reconciling twice changes nothing the second time: ${row.name}`, () => {
    const accepted = new Map(Object.entries(row.accepted));
    const placement =
      row.placement === undefined
        ? undefined
        : (pool: string): Placement | undefined => row.placement?.[pool];
    const reconcile = (): PendingConfigure[] =>
      configuresNeeded({
        desired: row.desired,
        accepted: (pool) => accepted.get(pool),
        ...(placement === undefined ? {} : { placement }),
      });
    const first = reconcile();
    assert.deepEqual(
      first.map((p) => p.spec.pool),
      row.first,
    );
    // Every Configure is accepted: remember it the way each mode does.
    for (const p of first) {
      const where = placement?.(p.spec.pool);
      accepted.set(p.spec.pool, { key: p.key, ...where });
    }
    assert.deepEqual(reconcile(), [], "the second reconcile sends nothing");
  });
}

test("a pool without an active owner is never in force for the operator", () => {
  const pending = configuresNeeded({
    desired: [a],
    accepted: () => ({ key: specKey(a), owner: "w0", epoch: 1 }),
    placement: () => undefined,
  });
  assert.deepEqual(pending, [{ spec: a, key: specKey(a) }]);
});
