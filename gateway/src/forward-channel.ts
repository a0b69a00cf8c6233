/**
 * The gateway's link to one worker: commands go out in batches on one long-lived
 * `WorkerService.Forward` stream instead of one unary call each.
 *
 * A unary call costs a new HTTP/2 stream with its headers and trailers on both sides,
 * and grpc-js' call setup (interceptors, resolving and load-balancing calls, filters)
 * on the gateway: most of the gateway's CPU per forwarded command. Here the commands
 * sent in one event-loop turn go to the worker in one ForwardRequest, and the worker
 * sends the replies settled in one of its turns in one ForwardResponse.
 *
 * Each command behaves as its unary call did, for the {@link Router}: it settles once,
 * with the worker's answer or failure (the same status, message and rich details);
 * with DEADLINE_EXCEEDED when its deadline passes first (its remaining time travels
 * with it, so the worker drops it once expired); with CANCELLED when cancelled; and
 * with the stream's own status (UNAVAILABLE when the connection is lost, a keepalive
 * ping goes unanswered or the worker ends the stream) when the stream breaks before
 * its answer came. The stream is opened again on demand, on the same channel (its
 * credentials, keepalive and reconnect backoff). A worker that does not know Forward
 * (UNIMPLEMENTED: an older worker during a rolling upgrade) is sent unary calls.
 */
import { WorkerServiceClient, WorkerServiceService } from "@berth/common";
import {
  internal,
  MAX_FORWARD_BATCH,
  MAX_FORWARD_BYTES,
  RepeatedFieldOne,
  RpcStatus,
  STATUS_DETAILS_KEY,
  type v1,
} from "@berth/proto";
import * as grpc from "@grpc/grpc-js";

/** What each forwarded method takes and answers. */
export interface ForwardMethods {
  reserve: { request: v1.ReserveRequest; response: v1.ReserveResponse };
  release: { request: v1.ReleaseRequest; response: v1.ReleaseResponse };
  getPool: { request: v1.GetPoolRequest; response: v1.GetPoolResponse };
  configure: { request: internal.PoolSpec; response: internal.ConfigureResponse };
}

/** A method of `berth.internal.v1.WorkerService` that can be forwarded. */
export type ForwardMethod = keyof ForwardMethods;

/** The error a command settles with: a grpc-js ServiceError's shape. */
export type ForwardError = Error & { code: grpc.status; details: string; metadata: grpc.Metadata };

/** Settles one command: exactly once, never synchronously from {@link ForwardChannel.send}. */
export type ForwardCallback<R> = (err: ForwardError | null, response?: R) => void;

/** One command sent with {@link ForwardChannel.send}. */
export interface ForwardTicket {
  /** Settles the command CANCELLED now, unless it has settled; a reply coming later is dropped. */
  cancel(): void;
}

/** Options of {@link ForwardChannel}. */
export interface ForwardChannelOptions {
  readonly address: string;
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions: grpc.ChannelOptions;
  /** Most commands per message. Default {@link MAX_FORWARD_BATCH}. */
  readonly maxBatch?: number;
  /** Most bytes per message. Default {@link MAX_FORWARD_BYTES}. */
  readonly maxBytes?: number;
}

/** What a channel did, for tests and benchmarks. */
export interface ForwardChannelStats {
  /** Forward streams opened. */
  readonly streams: number;
  /** ForwardRequest messages written. */
  readonly messages: number;
  /** Commands written on Forward streams. */
  readonly commands: number;
  /** Commands sent as unary calls (the worker does not know Forward). */
  readonly unary: number;
}

interface Pending {
  readonly id: number;
  readonly method: ForwardMethod;
  readonly request: unknown;
  readonly epoch: number;
  readonly callToken: string;
  /** Absolute, epoch ms. */
  readonly deadline: number;
  readonly callback: ForwardCallback<unknown>;
  timer: NodeJS.Timeout | undefined;
  /** The stream it was written on; undefined while queued. */
  stream: Stream | undefined;
  /** The unary call it went out as, in unary mode. */
  unary: grpc.ClientUnaryCall | undefined;
  settled: boolean;
}

type Stream = grpc.ClientDuplexStream<Frames, internal.ForwardResponse>;

const FORWARD_PATH = WorkerServiceService.forward.path;
/** Largest ForwardCommand.timeout_ms (uint32). */
const MAX_TIMEOUT_MS = 0xffff_ffff;

/** ForwardCommands encoded one at a time, each once; together, the ForwardRequest. */
type Frames = RepeatedFieldOne;
const serialize = (frames: Frames): Buffer => {
  const bytes = frames.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
};
const deserialize = (bytes: Buffer): internal.ForwardResponse =>
  internal.ForwardResponse.decode(bytes);

/** A ForwardChannel error of the given code, with empty metadata. */
function errorOf(code: grpc.status, details: string, metadata = new grpc.Metadata()): ForwardError {
  return Object.assign(new Error(`${code} ${grpc.status[code] ?? ""}: ${details}`), {
    code,
    details,
    metadata,
  });
}

/** The failure a command's unary call would have failed with, from a reply's Status. */
function errorOfStatus(s: RpcStatus): ForwardError {
  const metadata = new grpc.Metadata();
  if (s.details.length > 0) {
    metadata.set(STATUS_DETAILS_KEY, Buffer.from(RpcStatus.encode(s).finish()));
  }
  const code = s.code in grpc.status ? (s.code as grpc.status) : grpc.status.UNKNOWN;
  return errorOf(code, s.message, metadata);
}

/**
 * One worker's Forward stream, opened on demand, with the commands in flight on it.
 * See the module comment for what each command is guaranteed.
 */
export class ForwardChannel {
  readonly address: string;
  readonly #client: WorkerServiceClient;
  readonly #maxBatch: number;
  readonly #maxBytes: number;
  readonly #pending = new Map<number, Pending>();
  #queue: Pending[] = [];
  #nextId = 1;
  #flushScheduled = false;
  #stream: Stream | undefined;
  /** The worker answered Forward UNIMPLEMENTED: unary calls from now on. */
  #unaryOnly = false;
  #closed = false;
  #stats = { streams: 0, messages: 0, commands: 0, unary: 0 };

  constructor(options: ForwardChannelOptions) {
    this.address = options.address;
    this.#client = new WorkerServiceClient(
      options.address,
      options.credentials,
      options.channelOptions,
    );
    this.#maxBatch = Math.max(1, options.maxBatch ?? MAX_FORWARD_BATCH);
    this.#maxBytes = Math.max(1, options.maxBytes ?? MAX_FORWARD_BYTES);
  }

  /** Counters of what this channel sent so far. */
  stats(): ForwardChannelStats {
    return { ...this.#stats };
  }

  /** Commands sent and not settled yet. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * Sends one command, in the next message of this event-loop turn.
   *
   * @param deadline absolute, epoch ms: the command settles DEADLINE_EXCEEDED then
   * @param callback settles the command, exactly once and never before send returns
   */
  send<M extends ForwardMethod>(
    method: M,
    request: ForwardMethods[M]["request"],
    epoch: number,
    callToken: string,
    deadline: number,
    callback: ForwardCallback<ForwardMethods[M]["response"]>,
  ): ForwardTicket {
    const p: Pending = {
      id: this.#nextId++,
      method,
      request,
      epoch,
      callToken,
      deadline,
      callback: callback as ForwardCallback<unknown>,
      timer: undefined,
      stream: undefined,
      unary: undefined,
      settled: false,
    };
    if (this.#closed) {
      setImmediate(() => this.#settle(p, errorOf(grpc.status.UNAVAILABLE, "channel closed")));
      return { cancel: () => {} };
    }
    this.#pending.set(p.id, p);
    p.timer = setTimeout(
      () => this.#settle(p, errorOf(grpc.status.DEADLINE_EXCEEDED, "Deadline exceeded (gateway)")),
      Math.max(0, deadline - Date.now()),
    );
    this.#queue.push(p);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
    return {
      cancel: () => {
        p.unary?.cancel();
        this.#settle(p, errorOf(grpc.status.CANCELLED, "Cancelled on client"));
      },
    };
  }

  /**
   * Ends the stream and closes the channel; commands in flight settle CANCELLED
   * (as unary calls on a closed client did). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const stream = this.#stream;
    this.#stream = undefined;
    for (const p of [...this.#pending.values()]) {
      p.unary?.cancel();
      this.#settle(
        p,
        errorOf(grpc.status.CANCELLED, "the gateway closed its channel to the worker"),
      );
    }
    this.#queue = [];
    stream?.cancel();
    this.#client.close();
  }

  #settle(p: Pending, err: ForwardError | null, response?: unknown): void {
    if (p.settled) return;
    p.settled = true;
    clearTimeout(p.timer);
    this.#pending.delete(p.id);
    p.callback(err, response);
  }

  #flush(): void {
    this.#flushScheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    if (this.#closed) return;
    if (this.#unaryOnly) {
      for (const p of queue) if (!p.settled) this.#sendUnary(p);
      return;
    }
    const now = Date.now();
    let frames = new RepeatedFieldOne();
    let stream: Stream | undefined;
    for (const p of queue) {
      if (p.settled) continue;
      const left = p.deadline - now;
      if (left <= 0) {
        // Nothing for the worker to do with it.
        this.#settle(p, errorOf(grpc.status.DEADLINE_EXCEEDED, "Deadline exceeded (gateway)"));
        continue;
      }
      const timeoutMs = Math.min(MAX_TIMEOUT_MS, Math.ceil(left));
      const encoded = internal.ForwardCommand.encode(commandOf(p, timeoutMs)).finish();
      if (
        frames.count > 0 &&
        (frames.count >= this.#maxBatch || frames.bytes + encoded.length + 6 > this.#maxBytes)
      ) {
        stream ??= this.#open();
        this.#write(stream, frames);
        frames = new RepeatedFieldOne();
      }
      frames.add(encoded);
      stream ??= this.#open();
      p.stream = stream;
    }
    if (frames.count > 0 && stream !== undefined) this.#write(stream, frames);
  }

  #write(stream: Stream, frames: Frames): void {
    this.#stats.messages++;
    this.#stats.commands += frames.count;
    stream.write(frames);
  }

  #open(): Stream {
    if (this.#stream !== undefined) return this.#stream;
    const stream: Stream = this.#client.makeBidiStreamRequest(
      FORWARD_PATH,
      serialize,
      deserialize,
      new grpc.Metadata(),
      {},
    );
    this.#stats.streams++;
    this.#stream = stream;
    let answered = false;
    stream.on("data", (response: internal.ForwardResponse) => {
      answered = true;
      for (const reply of response.replies) {
        const p = this.#pending.get(reply.id);
        if (p === undefined) continue; // settled already (deadline, cancel): dropped
        if (reply.error !== undefined) this.#settle(p, errorOfStatus(reply.error));
        else {
          const value = reply.reserve ?? reply.release ?? reply.getPool ?? reply.configure;
          if (value === undefined) {
            this.#settle(
              p,
              errorOf(
                grpc.status.INTERNAL,
                `worker ${this.address} answered ${p.method} with no result`,
              ),
            );
          } else this.#settle(p, null, value);
        }
      }
    });
    // 'status' always follows; the listener keeps an 'error' from being unhandled.
    stream.on("error", () => {});
    stream.on("status", (s: grpc.StatusObject) => {
      if (this.#stream === stream) this.#stream = undefined;
      if (s.code === grpc.status.UNIMPLEMENTED && !answered && !this.#closed) {
        // An older worker: what it was sent never ran there. Send it again, unary.
        this.#unaryOnly = true;
        for (const p of [...this.#pending.values()]) {
          if (p.stream === stream && !p.settled) {
            p.stream = undefined;
            this.#sendUnary(p);
          }
        }
        return;
      }
      const err =
        s.code === grpc.status.OK
          ? errorOf(
              grpc.status.UNAVAILABLE,
              `worker ${this.address} ended the Forward stream before answering`,
            )
          : errorOf(s.code, s.details, s.metadata);
      for (const p of [...this.#pending.values()]) if (p.stream === stream) this.#settle(p, err);
    });
    return stream;
  }

  #sendUnary(p: Pending): void {
    const def = WorkerServiceService[p.method] as unknown as {
      path: string;
      requestSerialize: (value: unknown) => Buffer;
      responseDeserialize: (value: Buffer) => unknown;
    };
    const wrapped =
      p.method === "configure"
        ? { spec: p.request, epoch: p.epoch }
        : p.method === "reserve"
          ? { request: p.request, epoch: p.epoch, callToken: p.callToken }
          : { request: p.request, epoch: p.epoch };
    this.#stats.unary++;
    p.unary = this.#client.makeUnaryRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      wrapped,
      new grpc.Metadata(),
      { deadline: p.deadline },
      (err, response) => {
        if (err) this.#settle(p, err as ForwardError);
        else if (response === undefined) {
          this.#settle(
            p,
            errorOf(
              grpc.status.INTERNAL,
              `worker ${this.address} answered ${p.method} with no message`,
            ),
          );
        } else this.#settle(p, null, response);
      },
    );
  }
}

function commandOf(p: Pending, timeoutMs: number): internal.ForwardCommand {
  const c: internal.ForwardCommand = {
    id: p.id,
    timeoutMs,
    epoch: p.epoch,
    callToken: p.callToken,
  };
  switch (p.method) {
    case "reserve":
      c.reserve = p.request as v1.ReserveRequest;
      break;
    case "release":
      c.release = p.request as v1.ReleaseRequest;
      break;
    case "getPool":
      c.getPool = p.request as v1.GetPoolRequest;
      break;
    case "configure":
      c.configure = p.request as internal.PoolSpec;
      break;
  }
  return c;
}
