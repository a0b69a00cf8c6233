/**
 * Routes pool commands to the worker that owns the pool's shard, per the current
 * ShardMap, and retries across hand-offs within the caller's deadline.
 *
 * Retrying is safe: Reserve carries the client's request_id, so a retried reserve
 * that already committed returns the original reservation instead of reserving
 * twice; Release is idempotent; GetPool and Configure (a desired state) are too.
 * That is what lets this router retry an attempt whose outcome it never saw.
 *
 * Which failed attempts are retried (see {@link isTransportFailure}): NOT_OWNER, UNAVAILABLE
 * (any), WRITES_FENCED, an attempt that ran out of time, and a failure from below
 * Berth — CANCELLED the caller did not ask for, UNKNOWN, or INTERNAL, when the status
 * carries no ErrorInfo of domain "berth.dev": a worker that dies mid-call
 * (forceShutdown, a reset stream, a dropped connection) fails the attempt that way
 * without having answered it. Everything else is the owner's answer and passes
 * through unchanged — including an INTERNAL that carries a berth.dev reason.
 */

import { randomUUID } from "node:crypto";
import {
  ERROR_DOMAIN,
  internal,
  type ParsedRichStatus,
  parseRichStatus,
  richStatus,
  type ShardMapSource,
  shardOf,
  type v1,
} from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";

/** What each routed method takes and answers. The router adds the shard epoch. */
export interface RouterMethods {
  reserve: { request: v1.ReserveRequest; response: v1.ReserveResponse };
  release: { request: v1.ReleaseRequest; response: v1.ReleaseResponse };
  getPool: { request: v1.GetPoolRequest; response: v1.GetPoolResponse };
  configure: { request: internal.PoolSpec; response: internal.ConfigureResponse };
}

/** A method of `berth.internal.v1.WorkerService` the router forwards. */
export type RouterMethod = keyof RouterMethods;

/** Where a pool's commands go under one ShardMap revision. */
export interface Route {
  readonly revision: number;
  readonly shard: number;
  readonly epoch: number;
  /** Member id of the owner. */
  readonly owner: string;
  /** host:port of the owner's WorkerService. */
  readonly address: string;
}

/** Why the router retried an attempt; the `reason` label of the retries counter. */
export type RetryReason = "not_owner" | "unavailable" | "deadline" | "no_owner";

/** Options of {@link Router}. Every field but `source` has a default. */
export interface RouterOptions {
  /** Where the current ShardMap comes from. The router does not close it. */
  readonly source: ShardMapSource;
  readonly logger?: Logger;
  /** Registers `berth_gateway_forward_retries_total{reason}` here when given. */
  readonly registry?: Registry;
  /** Budget of a call whose caller set no deadline. Default 5,000 ms. */
  readonly defaultDeadlineMs?: number;
  /** Longest single attempt, so one hung owner cannot take the whole budget. Default 2,000 ms. */
  readonly attemptTimeoutMs?: number;
  /** First backoff delay, before jitter. Default 20 ms. */
  readonly initialBackoffMs?: number;
  /** Largest backoff delay. Default 500 ms. */
  readonly maxBackoffMs?: number;
  /** Extra grpc-js channel options, merged over the router's. */
  readonly channelOptions?: grpc.ChannelOptions;
  /** Source of randomness for jitter, in [0, 1). Default Math.random. */
  readonly random?: () => number;
}

/** Options of one {@link Router.call}. */
export interface CallOptions {
  /** Aborts the call (and the attempt in flight): it rejects with CANCELLED. */
  readonly signal?: AbortSignal;
}

const DEFAULT_DEADLINE_MS = 5000;
const DEFAULT_ATTEMPT_TIMEOUT_MS = 2000;
const DEFAULT_INITIAL_BACKOFF_MS = 20;
const DEFAULT_MAX_BACKOFF_MS = 500;

/**
 * grpc-js channel options for worker channels: keepalive so a dead peer is noticed
 * between calls; no retries by grpc itself (the router decides, with its own
 * deadline and backoff); fast reconnects so a restarted worker is used again soon.
 */
export const WORKER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 0,
  "grpc.enable_retries": 0,
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
};

/** The error object a grpc-js handler passes to its callback. */
export type GrpcError = Partial<grpc.StatusObject> & Error & { code: grpc.status };

interface Failure {
  readonly reason: "OWNER_UNAVAILABLE" | "NO_OWNER";
  readonly message: string;
}

/**
 * Holds the current ShardMap and one WorkerService client per member address, and
 * forwards commands to pool owners with retries across hand-offs.
 */
export class Router {
  readonly #source: ShardMapSource;
  readonly #logger: Logger | undefined;
  readonly #clients = new Map<string, internal.WorkerServiceClient>();
  readonly #unsubscribe: () => void;
  readonly #waiters = new Set<() => void>();
  readonly #retries: Counter<"reason"> | undefined;
  readonly #defaultDeadlineMs: number;
  readonly #attemptTimeoutMs: number;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #channelOptions: grpc.ChannelOptions;
  readonly #random: () => number;
  #closed = false;

  constructor(options: RouterOptions) {
    this.#source = options.source;
    this.#logger = options.logger;
    this.#defaultDeadlineMs = options.defaultDeadlineMs ?? DEFAULT_DEADLINE_MS;
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    this.#initialBackoffMs = options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS;
    this.#maxBackoffMs = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    this.#channelOptions = { ...WORKER_CHANNEL_OPTIONS, ...options.channelOptions };
    this.#random = options.random ?? Math.random;
    if (options.registry) {
      this.#retries = new Counter({
        name: "berth_gateway_forward_retries_total",
        help: "Forwarded attempts the gateway retried, by reason.",
        labelNames: ["reason"],
        registers: [options.registry],
      });
    }
    this.#unsubscribe = this.#source.subscribe((map) => this.#onMap(map));
  }

  /** The current ShardMap, or undefined before the first one is known. */
  current(): internal.ShardMap | undefined {
    return this.#source.current();
  }

  /**
   * Where `pool`'s commands go under the current ShardMap.
   *
   * @returns the route, or undefined when there is no map or the shard has no live owner
   */
  route(pool: string): Route | undefined {
    return resolveRoute(this.#source.current(), pool);
  }

  /**
   * Sends a command to the owner of `pool`'s shard with the shard's epoch, retrying
   * on NOT_OWNER, UNAVAILABLE (owner recovering, down, unreachable), attempt
   * timeouts and transport failures (CANCELLED, UNKNOWN, INTERNAL without a berth.dev
   * reason: a worker dying mid-call), with jittered backoff, until `deadline`.
   *
   * @param method the WorkerService method
   * @param pool the pool id that decides the shard (for release: the pool the reservation id names)
   * @param request the public request (or pool spec) to forward
   * @param deadline absolute deadline (Date or epoch ms); undefined or Infinity means the default budget
   * @returns the owner's answer
   * @throws a grpc status error: the owner's own (INVALID_ARGUMENT, NOT_FOUND,
   *   FAILED_PRECONDITION with a domain reason, …) unchanged with its details, or
   *   UNAVAILABLE with RetryInfo and reason OWNER_UNAVAILABLE or NO_OWNER when no
   *   owner answered in time
   */
  async call<M extends RouterMethod>(
    method: M,
    pool: string,
    request: RouterMethods[M]["request"],
    deadline?: grpc.Deadline,
    options: CallOptions = {},
  ): Promise<RouterMethods[M]["response"]> {
    const started = Date.now();
    const end = deadlineMs(deadline, started + this.#defaultDeadlineMs);
    // Give up a little before the caller's deadline, so our UNAVAILABLE (with its
    // RetryInfo) reaches the caller instead of its own DEADLINE_EXCEEDED.
    const giveUpAt = end - Math.min(100, Math.max(5, (end - started) / 10));
    let failure: Failure = { reason: "NO_OWNER", message: "no ShardMap is known yet" };
    let seenRevision = -1;
    let neededEpoch = 0;
    // One token per client call, the same on every attempt: the owner answers an
    // attempt that finds the reservation its own earlier attempt made as not replayed.
    const callToken = method === "reserve" ? randomUUID() : "";
    for (let attempt = 0; ; attempt++) {
      if (this.#closed) {
        throw richStatus(grpc.status.UNAVAILABLE, "the gateway is shutting down", {
          reason: "OWNER_UNAVAILABLE",
          retryDelayMs: this.#maxBackoffMs,
        });
      }
      throwIfAborted(options.signal);
      const map = this.#source.current();
      const route = resolveRoute(map, pool);
      let retryReason: RetryReason;
      if (route === undefined) {
        failure = { reason: "NO_OWNER", message: noRouteMessage(map, pool) };
        retryReason = "no_owner";
      } else {
        const attemptEnd = Math.min(giveUpAt, Date.now() + this.#attemptTimeoutMs);
        if (attemptEnd <= Date.now()) break;
        try {
          return await this.#attempt(method, route, request, attemptEnd, options.signal, callToken);
        } catch (e: unknown) {
          const s = parseRichStatus(e);
          if (s.code === grpc.status.FAILED_PRECONDITION && s.reason === "NOT_OWNER") {
            retryReason = "not_owner";
            const named = Number(s.metadata.epoch);
            if (Number.isSafeInteger(named) && named > route.epoch) neededEpoch = named;
            failure = {
              reason: "OWNER_UNAVAILABLE",
              message: `${route.owner} (${route.address}) does not own shard ${route.shard} at epoch ${route.epoch}: ${s.message}`,
            };
          } else if (
            s.code === grpc.status.UNAVAILABLE ||
            s.reason === "WRITES_FENCED" ||
            isTransportFailure(s, options.signal)
          ) {
            retryReason = "unavailable";
            failure = {
              reason: "OWNER_UNAVAILABLE",
              message: `owner ${route.owner} (${route.address}) of shard ${route.shard} is unavailable: ${
                s.code === grpc.status.UNAVAILABLE ? "" : `${grpc.status[s.code] ?? s.code}: `
              }${s.message}`,
            };
          } else if (s.code === grpc.status.DEADLINE_EXCEEDED && !options.signal?.aborted) {
            retryReason = "deadline";
            failure = {
              reason: "OWNER_UNAVAILABLE",
              message: `owner ${route.owner} (${route.address}) of shard ${route.shard} did not answer in time`,
            };
          } else {
            throw passThrough(e, s);
          }
          this.#logger?.debug(
            {
              pool,
              shard: route.shard,
              epoch: route.epoch,
              owner: route.owner,
              attempt,
              retryReason,
            },
            "forward attempt failed; retrying",
          );
        }
      }
      seenRevision = map?.revision ?? -1;
      const delay = this.#backoff(attempt);
      if (Date.now() + Math.min(delay, 1) >= giveUpAt) break;
      this.#retries?.inc({ reason: retryReason });
      const shard = route?.shard;
      await this.#waitFor(
        (m) =>
          m.revision > seenRevision &&
          (neededEpoch === 0 ||
            shard === undefined ||
            (m.shards[shard]?.epoch ?? 0) >= neededEpoch),
        // A newer map cuts the backoff short. Waiting for a newer epoch may take up to
        // the deadline, but retry at least every max backoff anyway, in case the
        // NOT_OWNER came from a worker that is itself behind.
        Math.min(giveUpAt, Date.now() + (neededEpoch > 0 ? this.#maxBackoffMs : delay)),
        options.signal,
      );
    }
    throw richStatus(
      grpc.status.UNAVAILABLE,
      `no owner of pool ${JSON.stringify(pool)} answered within the deadline: ${failure.message}`,
      {
        reason: failure.reason,
        metadata: { pool },
        retryDelayMs: this.#maxBackoffMs,
      },
    );
  }

  /** Closes every worker channel and stops following the ShardMap source. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const wake of this.#waiters) wake();
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  #backoff(attempt: number): number {
    const ceiling = Math.min(
      this.#maxBackoffMs,
      this.#initialBackoffMs * 2 ** Math.min(attempt, 20),
    );
    // "Equal jitter": half fixed, half random, so retries from many callers spread out.
    return ceiling / 2 + (this.#random() * ceiling) / 2;
  }

  #client(address: string): internal.WorkerServiceClient {
    let client = this.#clients.get(address);
    if (client === undefined) {
      client = new internal.WorkerServiceClient(
        address,
        grpc.credentials.createInsecure(),
        this.#channelOptions,
      );
      this.#clients.set(address, client);
    }
    return client;
  }

  #attempt<M extends RouterMethod>(
    method: M,
    route: Route,
    request: RouterMethods[M]["request"],
    deadline: number,
    signal: AbortSignal | undefined,
    callToken: string,
  ): Promise<RouterMethods[M]["response"]> {
    const def = internal.WorkerServiceService[method] as unknown as {
      path: string;
      requestSerialize: (value: unknown) => Buffer;
      responseDeserialize: (value: Buffer) => RouterMethods[M]["response"];
    };
    const wrapped =
      method === "configure"
        ? internal.ConfigureRequest.fromPartial({
            spec: request as internal.PoolSpec,
            epoch: route.epoch,
          })
        : method === "reserve"
          ? { request, epoch: route.epoch, callToken }
          : { request, epoch: route.epoch };
    const client = this.#client(route.address);
    return new Promise((resolve, reject) => {
      const call = client.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        def.responseDeserialize,
        wrapped,
        new grpc.Metadata(),
        { deadline },
        (err, response) => {
          signal?.removeEventListener("abort", onAbort);
          if (err) reject(err);
          else if (response === undefined) {
            reject(new Error(`worker ${route.address} answered ${method} with no message`));
          } else resolve(response);
        },
      );
      const onAbort = (): void => call.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  #onMap(map: internal.ShardMap): void {
    if (this.#closed) return;
    const live = new Set(map.members.map((m) => m.address));
    for (const [address, client] of this.#clients) {
      if (!live.has(address)) {
        client.close();
        this.#clients.delete(address);
      }
    }
    for (const wake of this.#waiters) wake();
  }

  /**
   * Resolves when a map satisfying `ready` is current, at `until`, on abort, or on
   * close — whichever comes first.
   */
  #waitFor(
    ready: (map: internal.ShardMap) => boolean,
    until: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = (): void => {
        const map = this.#source.current();
        if (this.#closed || signal?.aborted || (map !== undefined && ready(map))) {
          done();
        }
      };
      const timer = setTimeout(() => done(), Math.max(0, until - Date.now()));
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        signal?.removeEventListener("abort", check);
        resolve();
      };
      this.#waiters.add(check);
      signal?.addEventListener("abort", check, { once: true });
      check();
    });
  }
}

/** The absolute deadline in epoch ms: `fallback` when none (undefined, Infinity, NaN). */
function deadlineMs(deadline: grpc.Deadline | undefined, fallback: number): number {
  if (deadline === undefined) return fallback;
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms : fallback;
}

/** Where `pool` goes under `map`, or undefined when nowhere. */
export function resolveRoute(map: internal.ShardMap | undefined, pool: string): Route | undefined {
  if (map === undefined || !Number.isSafeInteger(map.shardCount) || map.shardCount < 1) {
    return undefined;
  }
  const shard = shardOf(pool, map.shardCount);
  const assignment = map.shards[shard];
  if (
    assignment === undefined ||
    assignment.owner === "" ||
    assignment.state === internal.ShardState.SHARD_STATE_UNASSIGNED
  ) {
    return undefined;
  }
  const member = map.members.find((m) => m.id === assignment.owner);
  if (member === undefined || member.address === "") return undefined;
  return {
    revision: map.revision,
    shard,
    epoch: assignment.epoch,
    owner: member.id,
    address: member.address,
  };
}

function noRouteMessage(map: internal.ShardMap | undefined, pool: string): string {
  if (map === undefined) return "no ShardMap is known yet";
  if (!Number.isSafeInteger(map.shardCount) || map.shardCount < 1) {
    return `ShardMap revision ${map.revision} has an invalid shard count ${map.shardCount}`;
  }
  const shard = shardOf(pool, map.shardCount);
  const owner = map.shards[shard]?.owner ?? "";
  return owner === ""
    ? `shard ${shard} has no owner in ShardMap revision ${map.revision}`
    : `owner ${owner} of shard ${shard} is not a member in ShardMap revision ${map.revision}`;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw Object.assign(new Error("the call was cancelled"), {
      code: grpc.status.CANCELLED,
      details: "the call was cancelled",
    });
  }
}

/**
 * Whether a failed attempt failed below Berth, so that the owner may never have
 * answered (and, for a write, the outcome is unknown: retrying with the same request
 * is how to learn it). Every answer a worker gives on purpose that must reach the
 * caller carries an ErrorInfo of domain berth.dev; a status without one and with code
 * CANCELLED (when the caller did not cancel), UNKNOWN or INTERNAL is what grpc-js
 * reports when the worker's process or connection goes away mid-call.
 */
export function isTransportFailure(s: ParsedRichStatus, signal?: AbortSignal): boolean {
  if (s.domain === ERROR_DOMAIN && s.reason !== undefined && s.reason !== "") return false;
  switch (s.code) {
    case grpc.status.CANCELLED:
      return signal?.aborted !== true;
    case grpc.status.UNKNOWN:
    case grpc.status.INTERNAL:
      return true;
    default:
      return false;
  }
}

/**
 * A worker's error as this gateway's answer: same code, message and trailing
 * metadata (which carries `grpc-status-details-bin`, the rich details).
 */
function passThrough(e: unknown, s: { code: number; message: string }): GrpcError {
  const metadata = new grpc.Metadata();
  const source = (e as { metadata?: unknown }).metadata;
  if (source instanceof grpc.Metadata) {
    for (const [key, values] of Object.entries(source.getMap())) {
      if (key.startsWith("grpc-") && key !== "grpc-status-details-bin") continue;
      const all = source.get(key);
      for (const value of all.length > 0 ? all : [values]) metadata.add(key, value);
    }
  }
  const code = s.code in grpc.status ? (s.code as grpc.status) : grpc.status.UNKNOWN;
  const err = new Error(s.message) as GrpcError;
  err.code = code;
  err.details = s.message;
  err.metadata = metadata;
  return err;
}
