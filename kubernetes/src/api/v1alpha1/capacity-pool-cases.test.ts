import assert from "node:assert/strict";
import { test } from "node:test";
import { CAPACITY_POOL_CASES } from "./capacity-pool-cases.js";
import { API_VERSION, CAPACITY_POOL_KIND, validateCapacityPool } from "./index.js";

for (const c of CAPACITY_POOL_CASES) {
  test(`locally, ${c.title}`, () => {
    const problems = validateCapacityPool({
      apiVersion: API_VERSION,
      kind: CAPACITY_POOL_KIND,
      ...c.object,
    });
    if (c.rejects === undefined) {
      assert.deepEqual(problems, []);
      return;
    }
    assert.ok(problems.length > 0, "expected a rejection");
    assert.ok(
      problems.every((p) => p.field.startsWith(c.rejects ?? "")),
      `every problem should name ${c.rejects}: ${JSON.stringify(problems)}`,
    );
    for (const p of problems) assert.ok(p.message.length > 10, `a readable message: ${p.message}`);
  });
}

test("case names are unique, so the table can be applied into one namespace", () => {
  const names = CAPACITY_POOL_CASES.map((c) => String(c.object.metadata.name));
  assert.equal(new Set(names).size, names.length);
});
