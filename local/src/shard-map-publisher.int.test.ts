// With port 0 the previous run's ShardMap is withheld from the children until this
// start's is written; its epochs must survive a start that ends in between.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { internal } from "@berth/proto";
import { ShardMapPublisher } from "./shard-map-publisher.js";

const dir = mkdtempSync(join(tmpdir(), "berth-publisher-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, "shard-map.json");
const unbound = [
  { id: "worker-0", address: "127.0.0.1:0" },
  { id: "worker-1", address: "127.0.0.1:0" },
];
const quiet = () => {};
const onDisk = () => internal.ShardMap.fromJSON(JSON.parse(readFileSync(file, "utf8")));

test("a withheld map is planned from again when the start ended before writing its own, and the reported addresses are published", async () => {
  const first = await ShardMapPublisher.plan(file, unbound, 8);
  first.locate(new Map([["worker-0", "127.0.0.1:4100"]]));
  await first.publishPlanned(quiet);
  assert.deepEqual(
    onDisk().members.map((m) => m.address),
    ["127.0.0.1:4100", "127.0.0.1:0"],
    "members not reported keep the address they were planned with",
  );
  assert.equal(first.source.current()?.revision, 1);
  // A manual move, so epochs differ from a fresh plan.
  const moved = { ...onDisk(), revision: 2 };
  moved.shards = moved.shards.map((s) => (s.shard === 3 ? { ...s, epoch: 7 } : s));
  await first.publish(moved);

  // A start that withheld the map and then ended: no map file for the children…
  const interrupted = await ShardMapPublisher.plan(file, unbound, 8);
  await interrupted.withhold();
  assert.equal(existsSync(file), false);
  assert.equal(interrupted.source.current(), undefined, "nothing published yet");

  // …and the next start still plans from it: revision and epochs go on.
  const next = await ShardMapPublisher.plan(file, unbound, 8);
  await next.withhold();
  next.locate(
    new Map([
      ["worker-0", "127.0.0.1:4200"],
      ["worker-1", "127.0.0.1:4201"],
    ]),
  );
  await next.publishPlanned(quiet);
  const map = onDisk();
  assert.equal(map.revision, 3);
  assert.equal(map.shards[3]?.epoch, 7);
  assert.deepEqual(
    map.members.map((m) => m.address),
    ["127.0.0.1:4200", "127.0.0.1:4201"],
  );
  assert.equal(existsSync(`${file}.previous`), false, "the withheld map is gone once replaced");
  assert.equal(next.source.current()?.revision, 3);
});
