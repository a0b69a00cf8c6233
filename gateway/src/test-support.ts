// Helpers for the gateway's tests, and (as `@berth/gateway/testing`) for the e2e tests of
// a gateway in front of real workers: real grpc-js servers and clients on loopback,
// ShardMaps built by hand, and a decoder for the rich error details on the wire.

import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { richStatus, WorkerServiceService } from "@berth/common";
import { internal, RpcStatus, STATUS_DETAILS_KEY, v1 } from "@berth/proto";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";

/** A ShardMap of `shardCount` shards, every one owned by `owner` at `epoch`. */
export function shardMapAllOwnedBy(options: {
  revision: number;
  owner: string;
  epoch: number;
  members: { id: string; address: string }[];
  shardCount?: number;
}): internal.ShardMap {
  const shardCount = options.shardCount ?? 8;
  return internal.ShardMap.fromPartial({
    revision: options.revision,
    shardCount,
    quorum: 1,
    members: options.members,
    shards: Array.from({ length: shardCount }, (_, shard) => ({
      shard,
      owner: options.owner,
      epoch: options.epoch,
      state:
        options.owner === ""
          ? internal.ShardState.SHARD_STATE_UNASSIGNED
          : internal.ShardState.SHARD_STATE_ACTIVE,
    })),
  });
}

/** One call a {@link FakeWorker} received. */
export interface ReceivedCall {
  readonly method: string;
  readonly request: unknown;
  readonly epoch: number;
  /** The call token of a Reserve ("" for other methods or none). */
  readonly callToken: string;
  /** The deadline the call arrived with (epoch ms), Infinity when none. */
  readonly deadlineMs: number;
}

/** How a fake worker answers: a response, or an error for the callback. */
export type FakeBehaviour = (call: ReceivedCall) => unknown | { error: unknown } | "hang";

/**
 * A small but real grpc-js `berth.internal.v1.WorkerService` server on loopback
 * whose answers the test scripts — the stand-in for a worker until the real one can
 * be started in-process.
 */
export class FakeWorker {
  readonly calls: ReceivedCall[] = [];
  behaviour: FakeBehaviour;
  readonly #server = new grpc.Server();
  address = "";

  /** ForwardRequest messages received on Forward streams. */
  forwardMessages = 0;
  /** Forward streams opened by callers. */
  forwardStreams = 0;

  /**
   * @param options.forward serve WorkerService.Forward (default true); false: answer it
   *   UNIMPLEMENTED, as a worker from before Forward
   */
  constructor(behaviour: FakeBehaviour, options: { readonly forward?: boolean } = {}) {
    this.behaviour = behaviour;
    const handler =
      (method: string) =>
      (
        call: grpc.ServerUnaryCall<
          { epoch: number; request?: unknown; spec?: unknown; callToken?: string },
          unknown
        >,
        callback: grpc.sendUnaryData<unknown>,
      ): void => {
        const deadline = call.getDeadline();
        const received: ReceivedCall = {
          method,
          request: call.request.request ?? call.request.spec,
          epoch: call.request.epoch,
          callToken: call.request.callToken ?? "",
          deadlineMs: deadline instanceof Date ? deadline.getTime() : deadline,
        };
        this.calls.push(received);
        const answer = this.behaviour(received);
        if (answer === "hang") return;
        if (typeof answer === "object" && answer !== null && "error" in answer) {
          callback((answer as { error: grpc.ServiceError }).error);
        } else callback(null, answer);
      };
    const forward = (
      call: grpc.ServerDuplexStream<internal.ForwardRequest, internal.ForwardResponse>,
    ): void => {
      if (options.forward === false) {
        call.emit("error", { code: grpc.status.UNIMPLEMENTED, details: "no Forward here" });
        return;
      }
      this.forwardStreams++;
      call.on("data", (req: internal.ForwardRequest) => {
        this.forwardMessages++;
        const now = Date.now();
        const replies: internal.ForwardReply[] = [];
        for (const c of req.commands) {
          const method =
            c.reserve !== undefined
              ? "reserve"
              : c.release !== undefined
                ? "release"
                : c.getPool !== undefined
                  ? "getPool"
                  : "configure";
          const received: ReceivedCall = {
            method,
            request: c.reserve ?? c.release ?? c.getPool ?? c.configure,
            epoch: c.epoch,
            callToken: c.callToken,
            deadlineMs: c.timeoutMs > 0 ? now + c.timeoutMs : Number.POSITIVE_INFINITY,
          };
          this.calls.push(received);
          const answer = this.behaviour(received);
          if (answer === "hang") continue;
          if (typeof answer === "object" && answer !== null && "error" in answer) {
            replies.push({ id: c.id, error: statusOf((answer as { error: unknown }).error) });
          } else replies.push({ id: c.id, [method]: answer });
        }
        if (replies.length > 0) call.write({ replies });
      });
      call.on("end", () => call.end());
      call.on("error", () => {});
    };
    this.#server.addService(WorkerServiceService, {
      reserve: handler("reserve"),
      release: handler("release"),
      getPool: handler("getPool"),
      configure: handler("configure"),
      echo: handler("echo"),
      forward,
    });
  }

  async start(address = "127.0.0.1:0"): Promise<this> {
    const port = await new Promise<number>((resolve, reject) =>
      this.#server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    this.address = `127.0.0.1:${port}`;
    return this;
  }

  stop(): void {
    this.#server.forceShutdown();
  }
}

/** The google.rpc.Status of an error as a grpc-js handler would send it. */
function statusOf(error: unknown): RpcStatus {
  const e = error as { code?: number; details?: string; message?: string; metadata?: unknown };
  const raw =
    e.metadata instanceof grpc.Metadata ? e.metadata.get(STATUS_DETAILS_KEY)[0] : undefined;
  if (raw instanceof Uint8Array) return RpcStatus.decode(raw);
  return {
    code: e.code ?? grpc.status.UNKNOWN,
    message: e.details ?? e.message ?? "",
    details: [],
  };
}

/** A worker's NOT_OWNER answer, naming the epoch it knows for the shard. */
export function notOwner(epoch: number, owner?: string): { error: unknown } {
  return {
    error: richStatus(grpc.status.FAILED_PRECONDITION, "not the owner of this shard", {
      reason: "NOT_OWNER",
      metadata: { shard: "0", epoch: String(epoch), ...(owner ? { owner } : {}) },
    }),
  };
}

/** A reserve answer as a worker gives it. */
export function reserved(pool: string, units: number, version = 1): v1.ReserveResponse {
  return v1.ReserveResponse.fromPartial({
    reservationId: `r-${version}`,
    pool,
    units,
    replayed: false,
    version,
  });
}

/** The decoded `grpc-status-details-bin` of an error. */
export interface WireDetails {
  errorInfo?: { reason: string; domain: string; metadata: Record<string, string> };
  retryDelayMs?: number;
  fieldViolations: { field: string; description: string }[];
}

/** Decodes the google.rpc.Status in an error's trailers (ErrorInfo, RetryInfo, BadRequest). */
export function wireDetails(err: unknown): WireDetails {
  const md = (err as { metadata?: grpc.Metadata }).metadata;
  const bin = md?.get("grpc-status-details-bin")[0];
  const out: WireDetails = { fieldViolations: [] };
  if (!(bin instanceof Buffer)) return out;
  const status = new BinaryReader(bin);
  while (status.pos < status.len) {
    const [field, wire] = status.tag();
    if (field !== 3) {
      status.skip(wire);
      continue;
    }
    const any = new BinaryReader(status.bytes());
    let typeUrl = "";
    let value: Uint8Array = new Uint8Array();
    while (any.pos < any.len) {
      const [f, w] = any.tag();
      if (f === 1) typeUrl = any.string();
      else if (f === 2) value = any.bytes();
      else any.skip(w);
    }
    const r = new BinaryReader(value);
    if (typeUrl.endsWith("google.rpc.ErrorInfo")) {
      const info = { reason: "", domain: "", metadata: {} as Record<string, string> };
      while (r.pos < r.len) {
        const [f, w] = r.tag();
        if (f === 1) info.reason = r.string();
        else if (f === 2) info.domain = r.string();
        else if (f === 3) {
          const e = new BinaryReader(r.bytes());
          let k = "";
          let v = "";
          while (e.pos < e.len) {
            const [ef, ew] = e.tag();
            if (ef === 1) k = e.string();
            else if (ef === 2) v = e.string();
            else e.skip(ew);
          }
          info.metadata[k] = v;
        } else r.skip(w);
      }
      out.errorInfo = info;
    } else if (typeUrl.endsWith("google.rpc.RetryInfo")) {
      let ms = 0;
      while (r.pos < r.len) {
        const [f, w] = r.tag();
        if (f === 1) {
          const d = new BinaryReader(r.bytes());
          while (d.pos < d.len) {
            const [df, dw] = d.tag();
            if (df === 1) ms += Number(d.int64()) * 1000;
            else if (df === 2) ms += d.int32() / 1e6;
            else d.skip(dw);
          }
        } else r.skip(w);
      }
      out.retryDelayMs = ms;
    } else if (typeUrl.endsWith("google.rpc.BadRequest")) {
      while (r.pos < r.len) {
        const [f, w] = r.tag();
        if (f !== 1) {
          r.skip(w);
          continue;
        }
        const v = new BinaryReader(r.bytes());
        const violation = { field: "", description: "" };
        while (v.pos < v.len) {
          const [vf, vw] = v.tag();
          if (vf === 1) violation.field = v.string();
          else if (vf === 2) violation.description = v.string();
          else v.skip(vw);
        }
        out.fieldViolations.push(violation);
      }
    }
  }
  return out;
}

/** Calls one unary method of a grpc-js generated client as a promise. */
export function unary<Req, Res>(
  client: grpc.Client,
  method: (
    request: Req,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: (error: grpc.ServiceError | null, response: Res) => void,
  ) => grpc.ClientUnaryCall,
  request: Req,
  timeoutMs = 10_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(
      client,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, response) => (err ? reject(err) : resolve(response)),
    );
  });
}

/** Waits until `predicate` holds, polling; throws after `timeoutMs` (a bound, not an assertion). */
export async function eventually(
  predicate: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A loopback TCP proxy in front of a real server that can make its open connections
 * go silent — bytes in either direction are held, sockets stay open — as a process
 * stopped with SIGSTOP does (the kernel keeps its connections; nothing answers).
 * Connections opened after a freeze pass through.
 */
export class FreezableProxy {
  readonly #server: Server;
  readonly #pairs = new Set<{ client: Socket; upstream: Socket }>();
  address = "";

  private constructor(target: string) {
    const [host, port] = [
      target.slice(0, target.lastIndexOf(":")),
      Number(target.slice(target.lastIndexOf(":") + 1)),
    ];
    this.#server = createServer((client) => {
      const upstream = tcpConnect(port, host);
      const pair = { client, upstream };
      this.#pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const end = (): void => {
        this.#pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
    });
  }

  /** Starts a proxy to `target` (host:port) on a free loopback port. */
  static async start(target: string): Promise<FreezableProxy> {
    const proxy = new FreezableProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, "127.0.0.1", resolve));
    const bound = proxy.#server.address();
    proxy.address = `127.0.0.1:${typeof bound === "object" && bound !== null ? bound.port : 0}`;
    return proxy;
  }

  /** Every connection open now stops carrying bytes, both ways, and stays open. */
  freezeOpenConnections(): void {
    for (const { client, upstream } of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  close(): void {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#server.close();
  }
}
