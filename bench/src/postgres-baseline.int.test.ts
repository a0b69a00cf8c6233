// The PostgreSQL baseline harness of `npm run bench` on a real server: initdb, start on
// loopback, a ~1 s pgbench cell of each script (closed loop and fixed rate), counts that
// agree with the table, and a stop that leaves no process and no data dir. Skipped with
// the reason when the PostgreSQL binaries are missing. No timing is asserted.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, test } from "node:test";
import { createSchema, findPostgresBin, runPgbench, startPostgres } from "./postgres-baseline.js";
import { childPids } from "./probes.js";

const found = findPostgresBin();
const skip = "skip" in found ? found.skip : false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("PostgreSQL baseline harness", { skip }, () => {
  test("pgbench cells commit exactly the transactions they report; stop cleans up", async () => {
    const pg = await startPostgres();
    const kids: number[] = [];
    try {
      assert.match(pg.psql("SHOW fsync; SHOW synchronous_commit;"), /^on\non\n$/);
      assert.match(pg.psql("SHOW listen_addresses"), /^127\.0\.0\.1\n$/);
      createSchema(pg);
      const reserved = (where: string): number =>
        Number(pg.psql(`SELECT coalesce(sum(reserved), 0) FROM pools WHERE ${where}`).trim());

      const hot = await runPgbench(pg, { script: "hot", clients: 2, seconds: 1 });
      assert.ok(hot.transactions > 0, "some transactions ran");
      assert.equal(hot.failed, 0);
      assert.equal(reserved("id = 0"), hot.transactions);
      assert.ok(hot.p50Ms > 0 && hot.p99Ms >= hot.p50Ms, "latencies from the per-transaction log");
      assert.ok(hot.serverCpuSeconds >= 0 && hot.clientCpuSeconds >= 0);

      const ins = await runPgbench(pg, { script: "hot+insert", clients: 2, seconds: 1 });
      assert.ok(ins.transactions > 0);
      assert.equal(reserved("id = 0"), hot.transactions + ins.transactions);
      assert.equal(Number(pg.psql("SELECT count(*) FROM reservations").trim()), ins.transactions);

      const spread = await runPgbench(pg, { script: "spread", clients: 2, seconds: 1 });
      assert.equal(reserved("id > 0"), spread.transactions);
      assert.ok(
        Number(pg.psql("SELECT count(*) FROM pools WHERE id > 0 AND reserved > 0").trim()) > 1,
      );

      // Fixed rate: far below the max, so every scheduled transaction runs.
      const fixed = await runPgbench(pg, { script: "spread", clients: 2, seconds: 1, rate: 50 });
      assert.ok(fixed.transactions > 0 && fixed.transactions <= 100, `${fixed.transactions}`);
      assert.equal(reserved("id > 0"), spread.transactions + fixed.transactions);
      kids.push(...childPids(pg.pid));
      assert.ok(kids.length > 0, "the postmaster has its background processes");
    } finally {
      await pg.stop();
    }
    assert.equal(existsSync(pg.dir), false, "data dir removed");
    assert.equal(alive(pg.pid), false, "postmaster gone");
    for (const k of kids) assert.equal(alive(k), false, `child ${k} gone`);
  });
});
