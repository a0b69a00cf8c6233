import assert from "node:assert/strict";
import { test } from "node:test";
import type { PoolCommand, Reply } from "../domain/pool.js";
import { type AnsweredOutcome, type ReadCommand, replyFits } from "./entity-outcome.js";

const commands: Record<PoolCommand["type"], PoolCommand> = {
  configure: {
    type: "configure",
    spec: { capacity: 1, labels: {}, closed: false, generation: 1 },
    at: 0,
  },
  retire: { type: "retire", at: 0 },
  reserve: { type: "reserve", units: 1, requestId: "r", secret: "s".repeat(22), at: 0 },
  release: { type: "release", reservationSeq: 1, key: { kind: "legacy" }, at: 0 } as PoolCommand,
};
const replies: Record<Reply["type"], Reply> = {
  configured: { type: "configured", changed: true },
  reserved: { type: "reserved", reservationSeq: 1, units: 1, replayed: false, secret: undefined },
  released: { type: "released", reservationSeq: 1, units: 1, alreadyReleased: false },
};
const fits: Record<PoolCommand["type"], Reply["type"]> = {
  configure: "configured",
  retire: "configured",
  reserve: "reserved",
  release: "released",
};

test("each command type admits exactly the reply type its outcome type names", () => {
  for (const [c, command] of Object.entries(commands)) {
    for (const [r, reply] of Object.entries(replies)) {
      assert.equal(replyFits(command, reply), fits[c as PoolCommand["type"]] === r, `${c} → ${r}`);
    }
  }
});

test("outcome types: a read gets a view, a reserve gets a reserved reply (checked by tsc)", () => {
  const view: AnsweredOutcome<ReadCommand> = { kind: "view", view: undefined };
  const readOk: AnsweredOutcome<ReadCommand> = {
    // @ts-expect-error a read is never answered with a reply
    kind: "ok",
    reply: replies.configured,
    version: 1,
    view: undefined,
  };
  const reserved: AnsweredOutcome<PoolCommand & { type: "reserve" }> = {
    kind: "ok",
    reply: { type: "reserved", reservationSeq: 1, units: 1, replayed: false, secret: undefined },
    version: 1,
    view: undefined,
  };
  const wrongReply: AnsweredOutcome<PoolCommand & { type: "reserve" }> = {
    kind: "ok",
    // @ts-expect-error a reserve is never answered with a release's reply
    reply: replies.released,
    version: 1,
    view: undefined,
  };
  // @ts-expect-error a write is never answered with a view
  const writeView: AnsweredOutcome<PoolCommand & { type: "reserve" }> = view;
  assert.ok([view, readOk, reserved, wrongReply, writeView].length === 5);
});
