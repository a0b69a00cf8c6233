// bindGrpcServer and shutdownGrpcServer against real grpc-js servers and clients on loopback.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import {
  type CallOptions,
  Client,
  credentials,
  Server,
  type ServiceDefinition,
  status,
} from "@grpc/grpc-js";
import { bindGrpcServer, shutdownGrpcServer } from "./grpc-server.js";

// One unary method carrying raw bytes: the lifecycle does not care what is served.
const PATH = "/berth.test.Lifecycle/Call";
const identity = (b: Buffer): Buffer => b;
const SERVICE: ServiceDefinition = {
  call: {
    path: PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** A server whose calls answer only when `release()` is called. */
function heldServer(): { server: Server; started: Promise<void>; release: () => void } {
  const server = new Server();
  let release = () => {};
  let markStarted = () => {};
  const started = new Promise<void>((r) => {
    markStarted = r;
  });
  server.addService(SERVICE, {
    call: (_call: unknown, callback: (err: null, value: Buffer) => void) => {
      markStarted();
      release = () => callback(null, Buffer.from("done"));
    },
  });
  return { server, started, release: () => release() };
}

function call(address: string, options: CallOptions = {}): Promise<{ code: number }> {
  const client = new Client(address, credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(PATH, identity, identity, Buffer.alloc(0), options, (err) => {
      client.close();
      resolve({ code: err?.code ?? status.OK });
    });
  });
}

test("port 0 binds a free port and the address names it; IPv6 hosts are bracketed", async (t) => {
  const v4 = new Server();
  const address = await bindGrpcServer(v4, "127.0.0.1:0");
  t.after(() => v4.forceShutdown());
  const m = /^127\.0\.0\.1:(\d+)$/.exec(address);
  assert.ok(m, address);
  assert.ok(Number(m[1]) > 0);

  const v6 = new Server();
  const v6Address = await bindGrpcServer(v6, "[::1]:0").catch((e: Error) => e);
  t.after(() => v6.forceShutdown());
  if (v6Address instanceof Error) {
    t.diagnostic(`no IPv6 loopback here: ${v6Address.message}`);
    return;
  }
  assert.match(v6Address, /^\[::1\]:[1-9]\d*$/);
});

test("a port another process holds is refused with the bind error", async (t) => {
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
  t.after(() => holder.close());
  const { port } = holder.address() as { port: number };
  const server = new Server();
  t.after(() => server.forceShutdown());
  await assert.rejects(bindGrpcServer(server, `127.0.0.1:${port}`), /No address added|EADDRINUSE/);
});

test("a call that finishes within the grace period is answered, and shutdown says so", async () => {
  const { server, started, release } = heldServer();
  const address = await bindGrpcServer(server, "127.0.0.1:0");
  const reply = call(address);
  await started;
  const stopped = shutdownGrpcServer(server, 60_000);
  release();
  assert.equal(await stopped, true);
  assert.equal((await reply).code, status.OK);
  // Stopped means stopped: a new call finds nobody.
  assert.equal((await call(address, { deadline: Date.now() + 5_000 })).code, status.UNAVAILABLE);
});

test("a call still running after the grace period is cut off, and shutdown says so", async () => {
  const { server, started } = heldServer();
  const address = await bindGrpcServer(server, "127.0.0.1:0");
  const reply = call(address);
  await started;
  assert.equal(await shutdownGrpcServer(server, 50), false);
  assert.notEqual((await reply).code, status.OK);
});
