import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { Replica } from "@berth/common";
import { internal, StaticShardMapSource, v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { capacityServiceHandlers } from "./capacity-service.js";
import { Router } from "./router.js";

/** Runs one handler with a minimal in-process call object; resolves with what it answered. */
function invoke<Req, Res>(
  handler: grpc.handleUnaryCall<Req, Res>,
  request: Req,
): Promise<{ err: grpc.ServiceError | null; response: Res | undefined }> {
  return new Promise((resolve) => {
    const call = {
      request,
      getDeadline: () => Number.POSITIVE_INFINITY,
      once: () => call,
    } as unknown as grpc.ServerUnaryCall<Req, Res>;
    handler(call, (err, response) =>
      resolve({ err: (err as grpc.ServiceError | null) ?? null, response: response ?? undefined }),
    );
  });
}

test("an unexpected exception becomes INTERNAL with an error id that is logged", async () => {
  const lines: string[] = [];
  const logger = pino(
    { level: "error" },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  const router = new Router({ source: new StaticShardMapSource() });
  const broken = {
    query(): never {
      throw new TypeError("replica exploded");
    },
  } as unknown as Replica;
  const handlers = capacityServiceHandlers({ router, replica: broken, logger });
  try {
    const { err } = await invoke(
      handlers.getAvailability,
      v1.GetAvailabilityRequest.fromPartial({}),
    );
    assert.equal(err?.code, grpc.status.INTERNAL);
    const id = /^internal error \(error id ([0-9a-f-]{36})\)$/.exec(err?.details ?? "")?.[1];
    assert.ok(id, `no error id in ${err?.details}`);
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const entry = logged.find((l) => l.errorId === id);
    assert.ok(entry, "the error id is logged");
    assert.match(JSON.stringify(entry.err), /replica exploded/);
    assert.equal(entry.method, "GetAvailability");
  } finally {
    router.close();
  }
});

test("a handler answers once, INVALID_ARGUMENT, for a request that fails validation", async () => {
  const router = new Router({ source: new StaticShardMapSource() });
  const handlers = capacityServiceHandlers({
    router,
    replica: {} as Replica,
    logger: pino({ level: "silent" }),
  });
  try {
    let answers = 0;
    const result = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = {
        request: v1.ReserveRequest.fromPartial({ pool: "x", units: 1, requestId: "r" }),
        getDeadline: () => Number.POSITIVE_INFINITY,
        once: () => call,
      } as unknown as grpc.ServerUnaryCall<v1.ReserveRequest, v1.ReserveResponse>;
      handlers.reserve(call, (err) => {
        answers++;
        resolve(err as grpc.ServiceError | null);
      });
    });
    assert.equal(result?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(result?.details ?? "", /^invalid pool: pool id "x" has no "\/"/);
    await new Promise((r) => setImmediate(r));
    assert.equal(answers, 1);
  } finally {
    router.close();
  }
});

test("GetAvailability lists no retired pool (a gossip tombstone), whatever its filters", async () => {
  const router = new Router({ source: new StaticShardMapSource() });
  const replica = new Replica(Date.now);
  replica.apply([
    internal.PoolCounters.fromPartial({ pool: "ns/live", capacity: 5, version: 2 }),
    internal.PoolCounters.fromPartial({ pool: "ns/gone", capacity: 5, version: 1 }),
    internal.PoolCounters.fromPartial({ pool: "ns/gone", version: 3, deleted: true }),
  ]);
  const handlers = capacityServiceHandlers({ router, replica, logger: pino({ level: "silent" }) });
  try {
    for (const includeClosed of [false, true]) {
      const { err, response } = await invoke(
        handlers.getAvailability,
        v1.GetAvailabilityRequest.fromPartial({ includeClosed }),
      );
      assert.equal(err, null);
      assert.deepEqual(
        response?.pools.map((p) => p.pool),
        ["ns/live"],
      );
    }
  } finally {
    router.close();
  }
});
