import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { internal } from "@berth/proto";
import {
  credentials,
  Server,
  ServerCredentials,
  type ServiceError,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import {
  WorkerServiceClient,
  type WorkerServiceServer,
  WorkerServiceService,
} from "./grpc-services.js";
import { parseRichStatus, richStatus } from "./rich-status.js";

/** A handler for the methods this test does not exercise. */
function unimplemented(_call: unknown, callback: sendUnaryData<never>): void {
  callback({ code: status.UNIMPLEMENTED, details: "not in this test" });
}

let server: Server;
let client: WorkerServiceClient;

before(async () => {
  server = new Server();
  const impl: WorkerServiceServer = {
    reserve: unimplemented,
    release: unimplemented,
    getPool: unimplemented,
    configure: unimplemented,
    forward: (call) =>
      call.emit("error", { code: status.UNIMPLEMENTED, details: "not in this test" }),
    echo: (call, callback) => {
      const mode = Buffer.from(call.request.payload).toString("utf8");
      if (mode === "recovering") {
        callback(
          richStatus(status.UNAVAILABLE, "shard 7 is recovering on worker-1", {
            reason: "SHARD_RECOVERING",
            metadata: { shard: "7", epoch: "3", owner: "worker-1" },
            retryDelayMs: 250,
          }),
        );
      } else if (mode === "invalid") {
        callback(
          richStatus(status.INVALID_ARGUMENT, "units must be positive", {
            reason: "INVALID_FIELD",
            fieldViolations: [
              { field: "request.units", description: "must be between 1 and 1000000" },
            ],
          }),
        );
      } else {
        callback(null, { payload: call.request.payload });
      }
    },
  };
  server.addService(WorkerServiceService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  client = new WorkerServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
});

after(async () => {
  client.close();
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
});

function echo(payload: string): Promise<internal.EchoResponse> {
  return new Promise((resolve, reject) =>
    client.echo({ payload: Buffer.from(payload) }, (e: ServiceError | null, r) =>
      e ? reject(e) : resolve(r),
    ),
  );
}

async function failure(payload: string): Promise<ServiceError> {
  try {
    await echo(payload);
  } catch (e: unknown) {
    return e as ServiceError;
  }
  assert.fail("the call succeeded");
}

test("a real client reads code, message, reason, metadata and retry delay of a rich status", async () => {
  const err = await failure("recovering");
  assert.equal(err.code, status.UNAVAILABLE);
  assert.deepEqual(parseRichStatus(err), {
    code: status.UNAVAILABLE,
    message: "shard 7 is recovering on worker-1",
    reason: "SHARD_RECOVERING",
    domain: "berth.dev",
    metadata: { shard: "7", epoch: "3", owner: "worker-1" },
    retryDelayMs: 250,
  });
});

test("a real client reads the field violations of a bad request", async () => {
  const parsed = parseRichStatus(await failure("invalid"));
  assert.equal(parsed.code, status.INVALID_ARGUMENT);
  assert.equal(parsed.message, "units must be positive");
  assert.equal(parsed.reason, "INVALID_FIELD");
  assert.equal(parsed.retryDelayMs, undefined);
  assert.deepEqual(parsed.fieldViolations, [
    { field: "request.units", description: "must be between 1 and 1000000" },
  ]);
});

test("a plain status without details parses to its code and message", async () => {
  const err = await new Promise<ServiceError>((resolve, reject) =>
    client.getPool({ request: undefined, epoch: 0 }, (e: ServiceError | null) =>
      e ? resolve(e) : reject(new Error("the call succeeded")),
    ),
  );
  assert.deepEqual(parseRichStatus(err), {
    code: status.UNIMPLEMENTED,
    message: "not in this test",
    metadata: {},
  });
});

test("a successful call through the same server still works", async () => {
  assert.equal(Buffer.from((await echo("hello")).payload).toString("utf8"), "hello");
});
