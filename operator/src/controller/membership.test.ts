import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { LeaseMembership, planningHoldMs } from "./membership.js";

const lease = (name: string, renewTime: string, address = `${name}:1`) => ({
  name,
  renewTime,
  leaseDurationSeconds: 10,
  address,
});

test("a worker is live for one lease duration after the operator saw it renew", () => {
  let now = 1_000;
  const m = new LeaseMembership(() => now);
  assert.equal(m.observe(lease("w0", "t1")), true);
  now += 9_999;
  assert.deepEqual(
    m.members().map((x) => [x.id, x.live]),
    [["w0", true]],
  );
  now += 1;
  assert.equal(m.members()[0]?.live, false);
});

test("an unchanged Lease seen again does not extend its life (a stuck worker expires)", () => {
  let now = 0;
  const m = new LeaseMembership(() => now);
  m.observe(lease("w0", "t1"));
  now = 6_000;
  assert.equal(m.observe(lease("w0", "t1")), false);
  now = 10_000;
  assert.equal(m.members()[0]?.live, false);
});

test("a renewal extends life from when it was observed, whatever time the worker wrote", () => {
  let now = 0;
  const m = new LeaseMembership(() => now);
  m.observe(lease("w0", "1999-01-01T00:00:00Z"));
  now = 8_000;
  // A worker clock far in the past (or future) changes nothing: only the change counts.
  m.observe(lease("w0", "1999-01-01T00:00:01Z"));
  now = 17_999;
  assert.equal(m.members()[0]?.live, true);
  assert.equal(m.members()[0]?.expiresInMs, 1);
});

test("a renewal after expiry is reported as a membership change; a routine renewal is not", () => {
  let now = 0;
  const m = new LeaseMembership(() => now);
  m.observe(lease("w0", "a"));
  now = 5_000;
  assert.equal(m.observe(lease("w0", "b")), false);
  now = 20_000;
  assert.equal(m.observe(lease("w0", "c")), true);
  assert.equal(m.observe(lease("w0", "c", "elsewhere:2")), true, "a new address is a change");
});

test("a Lease without an address is never live, and removal forgets the member", () => {
  const m = new LeaseMembership(() => 0);
  m.observe({ name: "w1", renewTime: "t", leaseDurationSeconds: 10, address: undefined });
  assert.equal(m.members()[0]?.live, false);
  assert.equal(m.remove("w1"), true);
  assert.deepEqual(m.members(), []);
});

test("liveness depends only on observation times: members() is sorted and agrees with nextExpiryInMs", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 5_000 })), {
        maxLength: 40,
      }),
      (steps) => {
        let now = 0;
        const m = new LeaseMembership(() => now, 10_000);
        const lastSeen = new Map<string, number>();
        let n = 0;
        for (const [w, dt] of steps) {
          now += dt;
          m.observe(lease(`w${w}`, `r${n++}`));
          lastSeen.set(`w${w}`, now);
        }
        const members = m.members();
        assert.deepEqual(
          members.map((x) => x.id),
          [...lastSeen.keys()].sort(),
        );
        for (const x of members) {
          assert.equal(x.live, now - (lastSeen.get(x.id) ?? 0) < 10_000);
        }
        const live = members.filter((x) => x.live);
        assert.equal(
          m.nextExpiryInMs(),
          live.length === 0 ? undefined : Math.min(...live.map((x) => x.expiresInMs)),
        );
      },
    ),
  );
});

test("planningHoldMs: a join waits the whole stable time; a loss waits only while a live member is in doubt", () => {
  const stableMs = 1_000;
  const fresh = { renewedAgoMs: 300 };
  const inDoubt = { renewedAgoMs: 1_600 };
  const hold = (c: Partial<Parameters<typeof planningHoldMs>[0]>) =>
    planningHoldMs({
      now: 10_000,
      stableMs,
      lastJoinAt: undefined,
      lastLossAt: undefined,
      live: [fresh, fresh],
      ...c,
    });
  assert.equal(hold({}), 0, "nothing changed");
  assert.equal(hold({ lastJoinAt: 9_800 }), 800, "joined 200 ms ago");
  assert.equal(hold({ lastJoinAt: 9_000 }), 0, "joined a stable time ago");
  // One worker killed: the others renew on time, so its shards move at once.
  assert.equal(hold({ lastLossAt: 9_990 }), 0);
  // Two killed together: when the first expires the second is in doubt.
  assert.equal(hold({ lastLossAt: 9_990, live: [fresh, inDoubt] }), 990);
  assert.equal(hold({ lastLossAt: 9_000, live: [fresh, inDoubt] }), 0, "waited long enough");
  assert.equal(hold({ lastJoinAt: 9_900, lastLossAt: 9_990 }), 900, "the longer hold wins");
});

test("planningHoldMs: two workers that stop renewing together never get a plan between their expiries", () => {
  // Renewals every `period` ms, Lease `duration` ms, stable time in between (the
  // documented condition). Workers a and b stop at most one period apart; c keeps
  // renewing. From a's expiry until b's, planning is held.
  fc.assert(
    fc.property(
      fc.integer({ min: 100, max: 1_000 }),
      fc.integer({ min: 0, max: 1_000 }),
      fc.integer({ min: 0, max: 1_000 }),
      (period, slack, offsetSeed) => {
        const stableMs = period + 1 + Math.floor(slack / 2);
        const duration = stableMs + period + 1 + slack;
        const aLast = 0;
        const bLast = offsetSeed % (period + 1);
        const aExpiry = aLast + duration;
        const bExpiry = bLast + duration;
        for (let now = aExpiry; now < bExpiry; now += 1) {
          const cAgo = now % period;
          const held = planningHoldMs({
            now,
            stableMs,
            lastJoinAt: undefined,
            lastLossAt: aExpiry,
            live: [{ renewedAgoMs: now - bLast }, { renewedAgoMs: cAgo }],
          });
          assert.ok(held > 0 && now + held > bExpiry - 1, `held ${held} at ${now}`);
        }
      },
    ),
  );
});
