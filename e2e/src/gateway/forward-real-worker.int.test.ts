// The worker's side of Forward (the gateway's batched stream of commands), on a REAL
// worker (startWorker, SQLite journal) in this process over real gRPC on loopback,
// configured through the gateway's Router: each command is answered as its unary RPC
// answers. ForwardChannel against scripted servers is gateway/src/forward-channel.int.test.ts.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { parseRichStatus, WorkerServiceClient } from "@berth/common";
import { Router } from "@berth/gateway";
import { shardMapAllOwnedBy } from "@berth/gateway/testing";
import { internal, RpcStatus, StaticShardMapSource, shardOf, type v1 } from "@berth/proto";
import { openJournal, startWorker } from "@berth/worker";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";

const silent = pino({ level: "silent" });
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe("Forward on a real worker", () => {
  test("a batch mixing reserves of served pools, a pool of a shard the worker does not own, a refused reserve, a malformed command and a read is answered per command, as the unary RPCs answer; on close the worker ends the stream", async () => {
    const dir = mkdtempSync(join(tmpdir(), "berth-forward-"));
    const journal = await openJournal(`sqlite://${join(dir, "journal.db")}`);
    const maps = new StaticShardMapSource();
    const worker = await startWorker({
      id: "w-a",
      grpc: "127.0.0.1:0",
      journal,
      shardMapSource: maps,
      logger: silent,
    });
    cleanups.push(async () => {
      await worker.close();
      await journal.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const shards = 8;
    const map = shardMapAllOwnedBy({
      revision: 1,
      owner: "w-a",
      epoch: 1,
      members: [
        { id: "w-a", address: worker.address },
        { id: "w-b", address: "127.0.0.1:1" },
      ],
      shardCount: shards,
    });
    // Shard 0 belongs to w-b.
    const mine = (p: string) => shardOf(p, shards) !== 0;
    const first = map.shards[0];
    assert.ok(first !== undefined);
    first.owner = "w-b";
    maps.set(map);
    await worker.whenReady();
    const pools = Array.from({ length: 40 }, (_, i) => `default/f-${i}`);
    const served = pools.filter(mine);
    const foreign = pools.find((p) => !mine(p));
    assert.ok(foreign !== undefined && served.length > 10);
    const source = new StaticShardMapSource(map);
    const router = new Router({ source, logger: silent });
    cleanups.push(() => router.close());
    await Promise.all(
      served.map((pool) =>
        router.call(
          "configure",
          pool,
          internal.PoolSpec.fromPartial({ pool, capacity: 5, generation: 1 }),
          Date.now() + 10_000,
        ),
      ),
    );

    // Raw Forward: one message, several kinds of commands.
    const client = new WorkerServiceClient(worker.address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const stream = client.forward();
    const replies = new Map<number, internal.ForwardReply[]>();
    stream.on("data", (r: internal.ForwardResponse) => {
      for (const reply of r.replies)
        replies.set(reply.id, [...(replies.get(reply.id) ?? []), reply]);
    });
    const ended = new Promise<grpc.StatusObject>((resolve) => stream.on("status", resolve));
    stream.on("error", () => {});
    const commands: internal.ForwardCommand[] = served.map((pool, i) =>
      internal.ForwardCommand.fromPartial({
        id: i + 1,
        timeoutMs: 10_000,
        epoch: 1,
        callToken: `t-${i}`,
        reserve: { pool, units: 2, requestId: `r-${i}` },
      }),
    );
    const idOf = { foreign: 1001, tooMuch: 1002, invalid: 1003, get: 1004 };
    commands.push(
      internal.ForwardCommand.fromPartial({
        id: idOf.foreign,
        timeoutMs: 10_000,
        epoch: 1,
        reserve: { pool: foreign, units: 1, requestId: "f" },
      }),
      internal.ForwardCommand.fromPartial({
        id: idOf.tooMuch,
        timeoutMs: 10_000,
        epoch: 1,
        reserve: { pool: served[0] ?? "", units: 50, requestId: "big" },
      }),
      internal.ForwardCommand.fromPartial({ id: idOf.invalid, timeoutMs: 10_000, epoch: 1 }),
      internal.ForwardCommand.fromPartial({
        id: idOf.get,
        timeoutMs: 10_000,
        epoch: 1,
        getPool: { pool: served[1] ?? "" },
      }),
    );
    stream.write({ commands });
    const want = commands.length;
    while ([...replies.keys()].length < want) await new Promise((r) => setTimeout(r, 10));
    for (const [id, rs] of replies) assert.equal(rs.length, 1, `command ${id} answered once`);
    served.forEach((pool, i) => {
      const r = replies.get(i + 1)?.[0];
      assert.equal(r?.reserve?.pool, pool);
      assert.equal(r?.reserve?.units, 2);
      assert.equal(r?.reserve?.replayed, false);
    });
    const statusOf = (id: number) => {
      const e = replies.get(id)?.[0]?.error;
      assert.ok(e !== undefined, `command ${id} failed`);
      const metadata = new grpc.Metadata();
      metadata.set("grpc-status-details-bin", Buffer.from(RpcStatus.encode(e).finish()));
      return parseRichStatus({ code: e.code, details: e.message, metadata });
    };
    const notOwnerStatus = statusOf(idOf.foreign);
    assert.equal(notOwnerStatus.reason, "NOT_OWNER");
    assert.equal(notOwnerStatus.metadata.owner, "w-b");
    assert.equal(statusOf(idOf.tooMuch).reason, "INSUFFICIENT_CAPACITY");
    assert.equal(statusOf(idOf.invalid).code, grpc.status.INVALID_ARGUMENT);
    assert.equal(replies.get(idOf.get)?.[0]?.getPool?.pool?.reserved, 2);

    // The same reserves through the unary RPC: the same answers (replayed now).
    const unary = await new Promise<v1.ReserveResponse>((resolve, reject) =>
      client.reserve(
        { request: { pool: served[0] ?? "", units: 2, requestId: "r-0" }, epoch: 1, callToken: "" },
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );
    assert.equal(unary.reservationId, replies.get(1)?.[0]?.reserve?.reservationId);
    assert.equal(unary.replayed, true);

    // Shutdown: the worker ends the stream (OK) once everything is answered.
    await worker.close();
    const status = await ended;
    assert.equal(status.code, grpc.status.OK);
  });
});
