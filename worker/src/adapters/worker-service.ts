// grpc-js handlers of berth.internal.v1.WorkerService over the shard ownership layer.
import { randomBytes } from "node:crypto";
import {
  outcomeOf,
  type RequestOutcomes,
  type WorkerServiceServer,
  WorkerServiceService,
} from "@berth/common";
import {
  encodeLegacyReservationId,
  encodeReservationId,
  internal,
  MAX_FORWARD_BATCH,
  MAX_FORWARD_BYTES,
  RESERVATION_SECRET_BYTES,
  RepeatedFieldOne,
  RpcStatus,
  STATUS_DETAILS_KEY,
  type v1,
} from "@berth/proto";
import {
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { ShardOwnership } from "../ownership/shard-ownership.js";
import { type Failure, JOURNAL_RETRY_DELAY_MS, toGrpcError } from "./grpc-errors.js";
import {
  validateConfigure,
  validateGetPool,
  validateRelease,
  validateReserve,
} from "./request-validation.js";
import { poolToWire } from "./wire.js";

/** What the WorkerService handlers need. */
export interface WorkerServiceDeps {
  /** This worker's member id (reported as a pool's owner). */
  readonly nodeId: string;
  readonly ownership: ShardOwnership;
  readonly logger: Logger;
  /** The clock stamped on commands (`at`). Default Date.now. */
  readonly now?: () => number;
  /** Source of reservation secrets. Default {@link newReservationSecret}. */
  readonly newSecret?: () => string;
  /**
   * Why the journal cannot be used now (a journal still connecting); while it names a
   * reason every command answers UNAVAILABLE / JOURNAL_UNAVAILABLE without being
   * routed. Default: never.
   */
  readonly journalProblem?: () => string | undefined;
  /**
   * berth_requests_total, counted here for each command a Forward stream carries (as
   * instrumentService counts each unary call), with the unary method's name.
   */
  readonly outcomes?: RequestOutcomes;
}

/**
 * A fresh reservation secret: {@link RESERVATION_SECRET_BYTES} bytes from the
 * operating system's CSPRNG, in base64url. Minted here, at the owner's edge, and
 * handed to the pure decider in the reserve command: the owner is where the secret
 * is stored, so no caller (gateway, control plane, a forged internal request) can
 * choose it, and a re-decided command keeps the secret it was given.
 */
export function newReservationSecret(): string {
  return randomBytes(RESERVATION_SECRET_BYTES).toString("base64url");
}

type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly failure: Failure };

const done = <T>(value: T): Result<T> => ({ ok: true, value });
const failed = (failure: Failure): Result<never> => ({ ok: false, failure });

/** The commands of the WorkerService, each implemented once for the unary RPCs and Forward. */
interface Commands {
  reserve(
    req: internal.ReserveRequest,
    deadline: number | undefined,
  ): Promise<Result<v1.ReserveResponse>>;
  release(
    req: internal.ReleaseRequest,
    deadline: number | undefined,
  ): Promise<Result<v1.ReleaseResponse>>;
  getPool(
    req: internal.GetPoolRequest,
    deadline: number | undefined,
  ): Promise<Result<v1.GetPoolResponse>>;
  configure(
    req: internal.ConfigureRequest,
    deadline: number | undefined,
  ): Promise<Result<internal.ConfigureResponse>>;
}

/** The WorkerService: its handlers, and the end of its Forward streams on shutdown. */
export interface WorkerService {
  readonly handlers: WorkerServiceServer;
  /**
   * Ends every Forward stream once it has answered every command it took; commands
   * arriving meanwhile answer UNAVAILABLE / OWNER_UNAVAILABLE (shutting down). Resolves
   * when every stream has ended. Idempotent.
   */
  closeStreams(): Promise<void>;
}

/**
 * The definition to register {@link WorkerService.handlers} with: the generated one,
 * except that Forward's replies are encoded one by one as they are settled (so a
 * response is cut at {@link MAX_FORWARD_BYTES} without encoding anything twice), and
 * sent as the ForwardResponse those encodings make together.
 */
export const WORKER_SERVICE_DEFINITION: ServiceDefinition = {
  ...WorkerServiceService,
  forward: {
    ...WorkerServiceService.forward,
    responseSerialize: (frames: RepeatedFieldOne) => {
      const bytes = frames.finish();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
  },
};

/**
 * The WorkerService: validates every request (a malformed one is INVALID_ARGUMENT,
 * never a crash), routes it through the ownership layer within the call's deadline,
 * and maps every failure through {@link toGrpcError} — one implementation of each
 * command, used by its unary RPC and by the Forward stream alike.
 */
export function workerService(deps: WorkerServiceDeps): WorkerService {
  const commands = workerCommands(deps);
  const log = deps.logger;
  const sessions = new Set<ForwardSession>();
  let closing: Promise<void> | undefined;
  const handlers: WorkerServiceServer = {
    reserve(call, callback) {
      answer(call, callback, log, (d) => commands.reserve(call.request, d));
    },
    release(call, callback) {
      answer(call, callback, log, (d) => commands.release(call.request, d));
    },
    getPool(call, callback) {
      answer(call, callback, log, (d) => commands.getPool(call.request, d));
    },
    configure(call, callback) {
      answer(call, callback, log, (d) => commands.configure(call.request, d));
    },
    echo(call, callback) {
      callback(null, { payload: call.request.payload });
    },
    forward(call) {
      const session = new ForwardSession(
        call as unknown as ServerDuplexStream<internal.ForwardRequest, RepeatedFieldOne>,
        commands,
        log,
        deps.outcomes,
        () => sessions.delete(session),
      );
      sessions.add(session);
      if (closing !== undefined) void session.close();
    },
  };
  return {
    handlers,
    closeStreams() {
      closing ??= Promise.all([...sessions].map((s) => s.close())).then(() => undefined);
      return closing;
    },
  };
}

/**
 * The WorkerService handlers alone (no Forward shutdown hook): for callers that never
 * close the server gracefully, such as tests.
 */
export function workerServiceHandlers(deps: WorkerServiceDeps): WorkerServiceServer {
  return workerService(deps).handlers;
}

function workerCommands(deps: WorkerServiceDeps): Commands {
  const now = deps.now ?? Date.now;
  const newSecret = deps.newSecret ?? newReservationSecret;
  const journalProblem = deps.journalProblem;
  const gated = (): Result<never> | undefined => {
    const reason = journalProblem?.();
    return reason === undefined
      ? undefined
      : failed({
          kind: "unavailable",
          reason: "JOURNAL_UNAVAILABLE",
          message: reason,
          retryDelayMs: JOURNAL_RETRY_DELAY_MS,
        });
  };

  return {
    async reserve(req, deadline) {
      const gate = gated();
      if (gate !== undefined) return gate;
      const v = validateReserve(req);
      if (!v.ok) return failed({ kind: "invalid_field", violation: v.violation });
      const { pool, units, requestId, callToken } = v.value;
      const { outcome } = await deps.ownership.execute(
        pool,
        callToken === undefined
          ? { type: "reserve", units, requestId, secret: newSecret(), at: now() }
          : { type: "reserve", units, requestId, secret: newSecret(), callToken, at: now() },
        deadline,
        req.epoch,
      );
      if (outcome.kind !== "ok") return failed({ ...outcome, pool });
      const reply = outcome.reply;
      return done({
        reservationId:
          reply.secret === undefined
            ? encodeLegacyReservationId(pool, reply.reservationSeq)
            : encodeReservationId(pool, reply.reservationSeq, reply.secret),
        pool,
        units: reply.units,
        replayed: reply.replayed,
        version: outcome.version,
      });
    },

    async release(req, deadline) {
      const gate = gated();
      if (gate !== undefined) return gate;
      const v = validateRelease(req);
      if (!v.ok) return failed({ kind: "invalid_field", violation: v.violation });
      const { reservationId, pool, seq, key } = v.value;
      const { outcome } = await deps.ownership.execute(
        pool,
        { type: "release", reservationSeq: seq, key, at: now() },
        deadline,
        req.epoch,
      );
      if (outcome.kind !== "ok") return failed({ ...outcome, pool });
      const reply = outcome.reply;
      return done({
        reservationId,
        pool,
        units: reply.units,
        alreadyReleased: reply.alreadyReleased,
        version: outcome.version,
      });
    },

    async getPool(req, deadline) {
      const gate = gated();
      if (gate !== undefined) return gate;
      const v = validateGetPool(req);
      if (!v.ok) return failed({ kind: "invalid_field", violation: v.violation });
      const { pool } = v.value;
      const r = await deps.ownership.execute(pool, { type: "read" }, deadline, req.epoch);
      const outcome = r.outcome;
      if (outcome.kind !== "view") return failed(outcome);
      // A retired pool (tombstone view) answers as one never configured.
      if (outcome.view === undefined || outcome.view.retired || r.shard === undefined) {
        return failed({ kind: "pool_not_found", pool });
      }
      return done({
        pool: poolToWire(outcome.view, { shard: r.shard, owner: deps.nodeId, epoch: r.epoch }),
      });
    },

    async configure(req, deadline) {
      const gate = gated();
      if (gate !== undefined) return gate;
      const v = validateConfigure(req);
      if (!v.ok) return failed({ kind: "invalid_field", violation: v.violation });
      const { pool } = v.value;
      const retire = "deleted" in v.value;
      const r = await deps.ownership.execute(
        pool,
        "deleted" in v.value
          ? { type: "retire", at: now() }
          : { type: "configure", spec: v.value.spec, at: now() },
        deadline,
        req.epoch,
      );
      const outcome = r.outcome;
      if (outcome.kind !== "ok") return failed({ ...outcome, pool });
      const reply = outcome.reply;
      // Retired (or never configured): there is no pool to report.
      if (retire) return done({ pool: undefined, changed: reply.changed });
      if (outcome.view === undefined || outcome.view.retired || r.shard === undefined) {
        // A configure the decider accepted leaves a live pool; anything else is a bug.
        return failed({
          kind: "internal",
          message: `configure of ${pool} left no pool (a worker bug)`,
        });
      }
      return done({
        pool: poolToWire(outcome.view, { shard: r.shard, owner: deps.nodeId, epoch: r.epoch }),
        changed: reply.changed,
      });
    },
  };
}

/** The absolute deadline of a unary call, or undefined when it has none. */
function deadlineOf(call: ServerUnaryCall<unknown, unknown>): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * Runs a handler body within the call's deadline and answers exactly once: the value,
 * or the failure mapped to a gRPC status. Never throws, never leaves the call hanging.
 */
function answer<Req, Res>(
  call: ServerUnaryCall<Req, Res>,
  callback: sendUnaryData<Res>,
  logger: Logger,
  body: (deadline: number | undefined) => Promise<Result<Res>>,
): void {
  const deadline = deadlineOf(call as ServerUnaryCall<unknown, unknown>);
  if (deadline !== undefined && deadline <= Date.now()) {
    callback(
      toGrpcError({ kind: "deadline_exceeded", message: "the call's deadline has passed" }, logger),
    );
    return;
  }
  run(body, deadline).then(
    (r) => {
      if (r.ok) callback(null, r.value);
      else callback(toGrpcError(r.failure, logger));
    },
    (e: unknown) => callback(toGrpcError({ kind: "error", error: e }, logger)),
  );
}

/** `body(deadline)`, with a synchronous throw turned into a failure. */
function run<Res>(
  body: (deadline: number | undefined) => Promise<Result<Res>>,
  deadline: number | undefined,
): Promise<Result<Res>> {
  try {
    return body(deadline);
  } catch (e: unknown) {
    return Promise.resolve(failed({ kind: "error", error: e }));
  }
}

type ForwardMethod = "Reserve" | "Release" | "GetPool" | "Configure";

/** The unary method a Forward command stands for; undefined when it names none. */
function methodOf(c: internal.ForwardCommand): ForwardMethod | undefined {
  if (c.reserve !== undefined) return "Reserve";
  if (c.release !== undefined) return "Release";
  if (c.getPool !== undefined) return "GetPool";
  if (c.configure !== undefined) return "Configure";
  return undefined;
}

/**
 * One Forward stream on the worker: runs each command of each ForwardRequest through
 * the same command code as the unary RPCs, and sends the replies settled in one
 * event-loop turn together, in messages of at most {@link MAX_FORWARD_BATCH} replies and
 * about {@link MAX_FORWARD_BYTES}.
 */
class ForwardSession {
  readonly #call: ServerDuplexStream<internal.ForwardRequest, RepeatedFieldOne>;
  readonly #commands: Commands;
  readonly #log: Logger;
  readonly #outcomes: RequestOutcomes | undefined;
  readonly #okCounters = new Map<ForwardMethod, { inc(): void }>();
  readonly #onEnd: () => void;
  #outbox = new RepeatedFieldOne();
  #flushScheduled = false;
  #inFlight = 0;
  #closing = false;
  #ended = false;
  readonly #endWaiters: (() => void)[] = [];

  constructor(
    call: ServerDuplexStream<internal.ForwardRequest, RepeatedFieldOne>,
    commands: Commands,
    log: Logger,
    outcomes: RequestOutcomes | undefined,
    onEnd: () => void,
  ) {
    this.#call = call;
    this.#commands = commands;
    this.#log = log;
    this.#outcomes = outcomes;
    this.#onEnd = onEnd;
    call.on("data", (req: internal.ForwardRequest) => this.#take(req));
    // The caller half-closed: answer what it sent, then end.
    call.on("end", () => void this.close());
    call.on("error", () => this.#finish());
    call.on("cancelled", () => this.#finish());
  }

  /** Ends the stream once every command taken is answered. Resolves when it has ended. */
  close(): Promise<void> {
    this.#closing = true;
    const ended = new Promise<void>((resolve) => {
      if (this.#ended) resolve();
      else this.#endWaiters.push(resolve);
    });
    this.#maybeEnd();
    return ended;
  }

  #take(req: internal.ForwardRequest): void {
    if (this.#ended) return;
    const received = Date.now();
    for (const c of req.commands) {
      this.#inFlight++;
      const id = c.id;
      const method = methodOf(c);
      if (method === undefined) {
        this.#send(
          internal.ForwardReply.encode({
            id,
            error: {
              code: status.INVALID_ARGUMENT,
              message: "command: one of reserve, release, get_pool or configure is required",
              details: [],
            },
          }).finish(),
        );
        continue;
      }
      let result: Promise<Result<unknown>>;
      if (this.#closing) {
        // Shutting down: nothing new is routed (as a server in shutdown takes no call).
        result = Promise.resolve(
          failed({
            kind: "unavailable",
            reason: "OWNER_UNAVAILABLE",
            message: "this worker is shutting down",
            retryDelayMs: JOURNAL_RETRY_DELAY_MS,
          }),
        );
      } else {
        const deadline = c.timeoutMs > 0 ? received + c.timeoutMs : undefined;
        result = run((d) => this.#run(method, c, d), deadline);
      }
      result.then(
        (r) => this.#settle(id, method, r),
        (e: unknown) => this.#settle(id, method, failed({ kind: "error", error: e })),
      );
    }
  }

  #run(
    method: ForwardMethod,
    c: internal.ForwardCommand,
    deadline: number | undefined,
  ): Promise<Result<unknown>> {
    switch (method) {
      case "Reserve":
        return this.#commands.reserve(
          { request: c.reserve, epoch: c.epoch, callToken: c.callToken },
          deadline,
        );
      case "Release":
        return this.#commands.release({ request: c.release, epoch: c.epoch }, deadline);
      case "GetPool":
        return this.#commands.getPool({ request: c.getPool, epoch: c.epoch }, deadline);
      case "Configure":
        return this.#commands.configure({ spec: c.configure, epoch: c.epoch }, deadline);
    }
  }

  #settle(id: number, method: ForwardMethod, r: Result<unknown>): void {
    if (!r.ok) {
      const err = toGrpcError(r.failure, this.#log);
      this.#count(method, err);
      if (r.failure.kind === "deadline_exceeded") {
        // Its time ran out before it was decided (nothing written): the caller's own
        // deadline has passed too and settled it there. No reply to build or send.
        this.#inFlight--;
        this.#maybeEnd();
        return;
      }
      this.#send(internal.ForwardReply.encode({ id, error: statusOf(err) }).finish());
      return;
    }
    const reply: internal.ForwardReply = { id };
    switch (method) {
      case "Reserve":
        reply.reserve = r.value as v1.ReserveResponse;
        break;
      case "Release":
        reply.release = r.value as v1.ReleaseResponse;
        break;
      case "GetPool":
        reply.getPool = r.value as v1.GetPoolResponse;
        break;
      case "Configure":
        reply.configure = r.value as internal.ConfigureResponse;
        break;
    }
    this.#countOk(method);
    this.#send(internal.ForwardReply.encode(reply).finish());
  }

  #countOk(method: ForwardMethod): void {
    if (this.#outcomes === undefined) return;
    let counter = this.#okCounters.get(method);
    if (counter === undefined) {
      counter = this.#outcomes.labels(method, "ok");
      this.#okCounters.set(method, counter);
    }
    counter.inc();
  }

  #count(method: ForwardMethod, err: unknown): void {
    if (this.#outcomes === undefined) return;
    try {
      this.#outcomes.inc({ method, outcome: outcomeOf(err) });
    } catch {
      this.#outcomes.inc({ method, outcome: "unknown" });
    }
  }

  #send(encoded: Uint8Array): void {
    this.#inFlight--;
    if (this.#ended) return;
    if (
      this.#outbox.count > 0 &&
      (this.#outbox.count >= MAX_FORWARD_BATCH ||
        this.#outbox.bytes + encoded.length > MAX_FORWARD_BYTES)
    ) {
      this.#flush();
    }
    this.#outbox.add(encoded);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
        this.#maybeEnd();
      });
    }
  }

  #flush(): void {
    if (this.#outbox.count === 0 || this.#ended) return;
    const frames = this.#outbox;
    this.#outbox = new RepeatedFieldOne();
    this.#call.write(frames);
  }

  #maybeEnd(): void {
    if (!this.#closing || this.#ended || this.#inFlight > 0 || this.#flushScheduled) return;
    this.#flush();
    this.#call.end();
    this.#finish();
  }

  #finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onEnd();
    for (const w of this.#endWaiters.splice(0)) w();
  }
}

/** The google.rpc.Status of a worker's error: its rich details as sent in trailers. */
function statusOf(err: {
  code: number;
  details: string;
  metadata: { get(key: string): unknown[] };
}): RpcStatus {
  const raw = err.metadata.get(STATUS_DETAILS_KEY)[0];
  if (raw instanceof Uint8Array) {
    try {
      return RpcStatus.decode(raw);
    } catch {
      // Built by richStatus here: it always decodes. Fall back to code and message.
    }
  }
  return { code: err.code, message: err.details, details: [] };
}
