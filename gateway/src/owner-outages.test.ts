import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import { pino } from "pino";
import { Registry } from "prom-client";
import { OwnerOutages } from "./owner-outages.js";

function capture(): {
  lines: { level: number; event?: string; [k: string]: unknown }[];
  logger: pino.Logger;
} {
  const lines: { level: number; event?: string }[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split("\n")) if (l !== "") lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, logger: pino({ level: "debug" }, stream) };
}

const route = { owner: "worker-1", address: "127.0.0.1:1", shard: 3 };

describe("owner outages", () => {
  test("an outage is warned once at its start, summarised at most once per interval, and closed by the owner's next answer", async () => {
    const { lines, logger } = capture();
    const registry = new Registry();
    let now = 1_000;
    const outages = new OwnerOutages({ logger, registry, warnIntervalMs: 10_000, now: () => now });
    for (let i = 0; i < 50; i++) {
      outages.unreachable(route, "UNAVAILABLE: connection refused");
      now += 100;
    }
    // 50 failed attempts over 5 s: one warning.
    assert.deepEqual(
      lines.map((l) => l.event),
      ["owner.unreachable"],
    );
    for (let i = 0; i < 60; i++) {
      outages.unreachable(route, "UNAVAILABLE: connection refused");
      now += 100;
    }
    // 110 over 11 s: one summary, counting the attempts since the first warning.
    assert.equal(lines.length, 2);
    assert.equal(lines[1]?.event, "owner.still_unreachable");
    assert.equal(lines[1]?.failedAttempts, 100);
    assert.deepEqual(outages.unreachableOwners, ["worker-1"]);
    outages.answered("worker-1");
    outages.answered("worker-1");
    assert.equal(lines.length, 3);
    assert.equal(lines[2]?.event, "owner.reachable_again");
    assert.equal(lines[2]?.failedAttempts, 110);
    assert.equal(lines[2]?.outageMs, 11_000);
    outages.unreachable(route, "UNAVAILABLE: connection refused");
    assert.equal(lines.length, 4, "a new outage warns again");
    const metric = await registry.getSingleMetricAsString("berth_gateway_owner_outages_total");
    assert.match(metric, /berth_gateway_owner_outages_total\{owner="worker-1"\} 2/);
  });

  test("outages of owners that left the ShardMap are forgotten", () => {
    const outages = new OwnerOutages();
    outages.unreachable(route, "x");
    outages.unreachable({ ...route, owner: "worker-2" }, "x");
    outages.retain(new Set(["worker-2"]));
    assert.deepEqual(outages.unreachableOwners, ["worker-2"]);
  });
});
