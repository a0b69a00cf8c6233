import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { sinkStreamErrorsTo } from "./kube-config.js";

test("an HTTP/2 stream to the API server that nobody listens on any more cannot crash the process when its session is destroyed", async () => {
  const server = http2.createServer();
  server.on("stream", (s) => {
    s.on("error", () => {});
    s.respond({ ":status": 200 });
    s.write("partial"); // a watch: the response never ends
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  sinkStreamErrorsTo(`http://127.0.0.1:${port}`);
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown): void => {
    uncaught.push(e);
  };
  process.on("uncaughtException", onUncaught);
  try {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    // As undici leaves a stream it stopped tracking: no 'error' listener of its own.
    const stream = session.request({ ":path": "/watch" });
    await new Promise<void>((resolve) => stream.once("data", () => resolve()));
    session.destroy(
      Object.assign(new Error("The client is destroyed"), { code: "UND_ERR_DESTROYED" }),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    process.off("uncaughtException", onUncaught);
    server.close();
  }
  assert.deepEqual(uncaught, []);
});
