import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BoundedInterner } from "./interning.js";

describe("BoundedInterner", () => {
  test("an equal key gives the value kept first; another key its own value", () => {
    const t = new BoundedInterner<{ v: string }>(8);
    const a = { v: "a" };
    assert.equal(t.intern("a", a), a);
    assert.equal(t.intern("a", { v: "a" }), a);
    const b = { v: "b" };
    assert.equal(t.intern("b", b), b);
    assert.equal(t.intern("a", { v: "a" }), a);
  });

  test("keeps at most twice its capacity, and what is used often survives", () => {
    const t = new BoundedInterner<string>(4);
    const hot = "hot";
    t.intern(hot, hot);
    for (let i = 0; i < 100; i++) {
      t.intern(`cold-${i}`, `cold-${i}`);
      assert.ok(t.size <= 8, `size ${t.size} after ${i + 1} cold keys`);
      if (i % 2 === 0) assert.equal(t.intern("hot", "hot-copy"), hot);
    }
    // A key forgotten two turnovers ago gets the new value.
    const fresh = { v: "x" };
    const u = new BoundedInterner<{ v: string }>(1);
    u.intern("x", { v: "x" });
    u.intern("y", { v: "y" });
    u.intern("z", { v: "z" });
    assert.equal(u.intern("x", fresh), fresh);
  });

  test("refuses a capacity that is not a positive integer", () => {
    for (const c of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new BoundedInterner(c), {
        name: "RangeError",
        message: `interner capacity must be a positive integer, got ${c}`,
      });
    }
  });
});
