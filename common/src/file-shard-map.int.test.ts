import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { planShardMap, ShardMap } from "@berth/proto";
import { FileShardMapSource, writeShardMapFile } from "./file-shard-map.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "berth-shard-map-"));
  dirs.push(d);
  return d;
}

const members = [
  { id: "worker-0", address: "127.0.0.1:50061" },
  { id: "worker-1", address: "127.0.0.1:50062" },
];
const mapAt = (revision: number): ShardMap => ({
  ...planShardMap({ members, shardCount: 16, quorum: 1 }),
  revision,
});

/** Waits until `condition` holds; the bound only keeps a broken test from hanging. */
async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`never happened: ${what}`);
}

const HOUR = 3_600_000;

test("a file source with no file yet has no map and no error, then follows the file by watching", async () => {
  const path = join(await tempDir(), "shard-map.json");
  const source = new FileShardMapSource(path, { pollIntervalMs: HOUR });
  try {
    await source.ready;
    assert.equal(source.current(), undefined);
    assert.deepEqual(source.stats(), { accepted: 0, errors: 0, lastError: undefined });
    const seen: number[] = [];
    source.subscribe((m) => seen.push(m.revision));
    await writeShardMapFile(path, mapAt(1));
    await until("revision 1 is seen", () => seen.length === 1);
    assert.deepEqual(source.current(), mapAt(1));
    await writeShardMapFile(path, mapAt(2));
    await until("revision 2 is seen", () => seen.length === 2);
    assert.deepEqual(seen, [1, 2]);
  } finally {
    source.close();
  }
});

test("a file source reads an existing file on start", async () => {
  const path = join(await tempDir(), "shard-map.json");
  await writeShardMapFile(path, mapAt(4));
  const source = new FileShardMapSource(path, { pollIntervalMs: HOUR });
  try {
    await source.ready;
    assert.deepEqual(source.current(), mapAt(4));
    assert.equal(source.stats().accepted, 1);
  } finally {
    source.close();
  }
});

test("partial, invalid and older files are counted or ignored, and the current map stays", async () => {
  const path = join(await tempDir(), "shard-map.json");
  await writeShardMapFile(path, mapAt(5));
  const source = new FileShardMapSource(path, { pollIntervalMs: HOUR });
  try {
    await source.ready;
    const seen: number[] = [];
    source.subscribe((m) => seen.push(m.revision));

    // Written in place, not atomically: the source may catch it empty or partial,
    // possibly more than once; each read counts as an error.
    await writeFile(path, '{"revision": 9, "shardCo');
    await until("the partial file is counted", () =>
      /^cannot read .*shard-map\.json: SyntaxError/.test(source.stats().lastError ?? ""),
    );
    assert.ok(source.stats().errors >= 1);

    const bad = { ...mapAt(9), shards: mapAt(9).shards.slice(1) };
    await writeShardMapFile(path, bad);
    await until("the invalid map is counted", () =>
      /^invalid shard map in .*shard-map\.json: map lists 15 shards; its shard count is 16$/.test(
        source.stats().lastError ?? "",
      ),
    );
    assert.equal(source.current()?.revision, 5);

    await writeShardMapFile(path, mapAt(3));
    await writeShardMapFile(path, mapAt(6));
    await until("revision 6 is seen", () => seen.length > 0);
    assert.deepEqual(seen, [6]);
    assert.equal(source.current()?.revision, 6);
    assert.equal(source.stats().accepted, 2);
  } finally {
    source.close();
  }
});

test("with watching off, the poll alone picks up new revisions", async () => {
  const path = join(await tempDir(), "shard-map.json");
  const source = new FileShardMapSource(path, { watch: false, pollIntervalMs: 20 });
  try {
    await source.ready;
    await writeShardMapFile(path, mapAt(1));
    await until("the poll sees revision 1", () => source.current()?.revision === 1);
    await writeShardMapFile(path, mapAt(2));
    await until("the poll sees revision 2", () => source.current()?.revision === 2);
    assert.equal(source.stats().errors, 0);
  } finally {
    source.close();
  }
});

test("a closed source notifies nobody", async () => {
  const path = join(await tempDir(), "shard-map.json");
  const closed = new FileShardMapSource(path, { pollIntervalMs: 20 });
  await closed.ready;
  let calls = 0;
  closed.subscribe(() => calls++);
  closed.close();
  await writeShardMapFile(path, mapAt(1));
  // A second source seeing the file (and a few of the first one's poll periods
  // passing) is the barrier; the closed one must still have nothing.
  const witness = new FileShardMapSource(path, { pollIntervalMs: 20 });
  try {
    await until("the witness sees revision 1", () => witness.current()?.revision === 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(calls, 0);
    assert.equal(closed.current(), undefined);
  } finally {
    witness.close();
  }
});

test("writeShardMapFile writes ShardMap JSON atomically and leaves no temp file", async () => {
  const dir = await tempDir();
  const path = join(dir, "shard-map.json");
  let reading = true;
  let reads = 0;
  const reader = (async () => {
    while (reading) {
      try {
        JSON.parse(await readFile(path, "utf8"));
        reads++;
      } catch (e: unknown) {
        if ((e as { code?: string }).code !== "ENOENT") throw e;
      }
    }
  })();
  for (let r = 1; r <= 40; r++) await writeShardMapFile(path, mapAt(r));
  reading = false;
  await reader;
  assert.ok(reads > 0);
  assert.deepEqual(await readdir(dir), ["shard-map.json"]);
  const text = await readFile(path, "utf8");
  assert.deepEqual(JSON.parse(text), ShardMap.toJSON(mapAt(40)));
  assert.deepEqual(ShardMap.fromJSON(JSON.parse(text)), mapAt(40));
});

test("writeShardMapFile fails when the directory does not exist", async () => {
  const path = join(await tempDir(), "missing", "shard-map.json");
  await assert.rejects(writeShardMapFile(path, mapAt(1)), { code: "ENOENT" });
});
