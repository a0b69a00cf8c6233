/**
 * Helper process for sqlite-journal.int.test.ts (not a test itself): opens the journal
 * file, prints "ready", then appends `count` events to one pool in batches, retrying on
 * conflict, and prints "committed <version> <firstIndex> <batchSize>" after each
 * append that succeeded. The journal commits in its own thread and an append resolves
 * only after that COMMIT returned; stdout to a pipe is synchronous on Linux, so a printed
 * line means the commit happened first. It pauses briefly after half of its appends so that
 * a racing writer gets the lock now and then.
 *
 * Usage: sqlite-journal.child.ts <db> <pool> <shard> <tag> <count> <batch> <FULL|NORMAL>
 */
import { setTimeout as sleep } from "node:timers/promises";
import { VersionConflictError } from "./errors.js";
import { SqliteJournal } from "./sqlite-journal.js";

const [db, pool, shardText, tag, countText, batchText, sync] = process.argv.slice(2);
if (!db || !pool || !tag || (sync !== "FULL" && sync !== "NORMAL")) {
  throw new Error(`usage: <db> <pool> <shard> <tag> <count> <batch> <FULL|NORMAL>`);
}
const shard = Number(shardText);
const count = Number(countText);
const batchSize = Number(batchText);

const journal = SqliteJournal.open(db, { synchronous: sync, busyTimeoutMs: 30_000 });
process.stdout.write("ready\n");
let expected = (await journal.load(pool)).version;
for (let next = 0; next < count; next += batchSize) {
  const size = Math.min(batchSize, count - next);
  const batch = Array.from({ length: size }, (_, k) => ({ writer: tag, i: next + k }));
  for (;;) {
    try {
      expected = await journal.append({ pool, shard, epoch: 1, expectedVersion: expected }, batch);
      break;
    } catch (e: unknown) {
      if (!(e instanceof VersionConflictError)) throw e;
      expected = e.actualVersion;
    }
  }
  process.stdout.write(`committed ${expected} ${next} ${size}\n`);
  // A pause now and then gives a racing writer a chance at the lock: waiters poll it
  // with sleeps, so a writer that never pauses could starve the other.
  if (Math.random() < 0.5) await sleep(1);
}
await journal.close();
