// The local supervisor's control endpoint (127.0.0.1 only): see and move shards.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** What the control server can do; implemented by the local cluster. */
export interface ControlHandlers {
  /** The current ShardMap as proto3 JSON. */
  shardMap(): unknown;
  /** Moves a shard; the answer is JSON. Throws a ShardMoveError-like error on bad input. */
  moveShard(shard: number, to: string): Promise<unknown>;
  /** Process states as JSON. */
  processes(): unknown;
  /** Shard and owner of a pool. */
  shardOf(pool: string): unknown;
}

/** A running control server. */
export interface ControlServer {
  /** host:port. */
  readonly address: string;
  close(): Promise<void>;
}

/** Thrown by a handler for a request the client got wrong (answered 400). */
export interface BadRequest {
  readonly name: "ShardMoveError";
  readonly message: string;
}

const HELP = `Berth local control endpoint
  GET  /shardmap                       the current ShardMap (proto3 JSON)
  GET  /processes                      gateway and workers: pid, ready, restarts
  GET  /shard-of?pool=NAMESPACE/NAME   shard and owner of a pool
  POST /shards/N/move?to=worker-I      move shard N to worker-I (drained, then epoch+1)
`;

/** Starts the control server on 127.0.0.1:`port` (0: any free port). */
export async function startControlServer(
  port: number,
  handlers: ControlHandlers,
): Promise<ControlServer> {
  const server = createServer((req, res) => {
    handle(req, res, handlers).catch((e: unknown) => {
      const bad = e instanceof Error && e.name === "ShardMoveError";
      send(res, bad ? 400 : 500, { error: e instanceof Error ? e.message : String(e) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { address, port: bound } = server.address() as AddressInfo;
  return {
    address: `${address}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  handlers: ControlHandlers,
): Promise<void> {
  const url = new URL(req.url ?? "/", "http://control");
  const method = req.method ?? "GET";
  const move = /^\/shards\/([^/]+)\/move$/.exec(url.pathname);
  if (move !== null) {
    if (method !== "POST") return send(res, 405, { error: "use POST" });
    const to = url.searchParams.get("to");
    if (to === null || to === "") {
      return send(res, 400, { error: "missing ?to=<worker id>, e.g. ?to=worker-1" });
    }
    const text = move[1] ?? "";
    if (!/^\d+$/.test(text)) {
      return send(res, 400, { error: `shard must be a non-negative integer, got "${text}"` });
    }
    return send(res, 200, await handlers.moveShard(Number(text), to));
  }
  if (method !== "GET") return send(res, 405, { error: "use GET" });
  switch (url.pathname) {
    case "/shardmap":
      return send(res, 200, handlers.shardMap());
    case "/processes":
      return send(res, 200, handlers.processes());
    case "/shard-of": {
      const pool = url.searchParams.get("pool");
      if (pool === null || pool === "") return send(res, 400, { error: "missing ?pool=ns/name" });
      return send(res, 200, handlers.shardOf(pool));
    }
    case "/":
      res.writeHead(200, { "content-type": "text/plain" }).end(HELP);
      return;
    default:
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found\n\n${HELP}`);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res
    .writeHead(status, { "content-type": "application/json" })
    .end(`${JSON.stringify(body, null, 2)}\n`);
}
