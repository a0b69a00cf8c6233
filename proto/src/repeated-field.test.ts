import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { internal } from "./index.js";
import { RepeatedFieldOne } from "./repeated-field.js";

test("entries added one at a time make the message that encodes them all at once", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ id: fc.integer({ min: 0, max: 2 ** 31 }), pad: fc.string({ maxLength: 300 }) }),
        {
          maxLength: 40,
        },
      ),
      (entries) => {
        const replies = entries.map((e) => ({
          id: e.id,
          error: { code: 5, message: e.pad, details: [] },
        }));
        const frames = new RepeatedFieldOne();
        for (const r of replies) frames.add(internal.ForwardReply.encode(r).finish());
        const whole = internal.ForwardResponse.encode({ replies }).finish();
        assert.equal(frames.count, replies.length);
        assert.equal(frames.bytes, whole.length);
        assert.deepEqual(frames.finish(), whole);
      },
    ),
  );
});
