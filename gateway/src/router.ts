/**
 * Routes pool commands to the worker that owns the pool's shard, per the current
 * ShardMap, and retries across hand-offs within the caller's deadline.
 *
 * Retrying is safe: Reserve carries the client's request_id, so a retried reserve
 * that already committed returns the original reservation instead of reserving
 * twice; Release is idempotent; GetPool and Configure (a desired state) are too.
 * That is what lets this router retry an attempt whose outcome it never saw.
 *
 * The policy: an attempt is given the whole remaining budget of the call. An owner
 * that is alive but slow is waited for, never sent the command a second time. What
 * ends an attempt early, and is retried (see {@link classifyFailure}):
 * - NOT_OWNER or WRITES_FENCED: the shard moved; follow the ShardMap;
 * - UNAVAILABLE from the owner itself (an ErrorInfo of domain berth.dev: shard
 *   recovering, journal unavailable, shutting down), after at least its RetryInfo delay;
 * - the owner is unreachable: a transport failure (connection refused or reset, a
 *   keepalive ping unanswered — a frozen or vanished process —, CANCELLED the caller did
 *   not ask for, UNKNOWN or INTERNAL without a berth.dev reason);
 * - a newer ShardMap names another owner for the shard while the attempt waits: the
 *   attempt is abandoned and the command sent to the new owner.
 * Everything else is the owner's answer and passes through unchanged — including an
 * INTERNAL that carries a berth.dev reason. When the budget runs out the caller gets
 * UNAVAILABLE with RetryInfo and the most specific reason seen: the owner's own
 * (JOURNAL_UNAVAILABLE, SHARD_RECOVERING, …), else OWNER_UNAVAILABLE or NO_OWNER.
 */

import { randomUUID } from "node:crypto";
import {
  type InternalTransport,
  type ParsedRichStatus,
  parseRichStatus,
  plaintextTransport,
  richStatus,
} from "@berth/common";
import {
  backoffDelayMs,
  ERROR_DOMAIN,
  type ErrorReason,
  internal,
  isErrorReason,
  type ShardMapSource,
  shardOf,
} from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { ForwardChannel, type ForwardMethods } from "./forward-channel.js";
import { OwnerOutages } from "./owner-outages.js";

/** What each routed method takes and answers. The router adds the shard epoch. */
export type RouterMethods = ForwardMethods;

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

/**
 * Why the router retried an attempt; the `reason` label of the retries counter.
 *
 * - `not_owner`: the owner refused (NOT_OWNER, WRITES_FENCED): the shard moved.
 * - `unavailable`: the owner answered UNAVAILABLE itself (recovering, journal down, …).
 * - `unreachable`: no answer from the owner: connection refused or lost, keepalive
 *   ping unanswered (a dead or frozen process), a reset stream.
 * - `moved`: a newer ShardMap named another owner while the attempt waited.
 * - `no_owner`: the ShardMap names no owner for the shard (yet).
 */
export type RetryReason = "not_owner" | "unavailable" | "unreachable" | "moved" | "no_owner";

/** Options of {@link Router}. Every field but `source` has a default. */
export interface RouterOptions {
  /** Where the current ShardMap comes from. The router does not close it. */
  readonly source: ShardMapSource;
  readonly logger?: Logger;
  /** Registers `berth_gateway_forward_retries_total{reason}` here when given. */
  readonly registry?: Registry;
  /** Budget of a call whose caller set no deadline. Default 5,000 ms. */
  readonly defaultDeadlineMs?: number;
  /** First backoff delay, before (equal) jitter. Default 20 ms. */
  readonly initialBackoffMs?: number;
  /** Largest backoff delay. Default 500 ms. */
  readonly maxBackoffMs?: number;
  /**
   * Extra grpc-js channel options, merged over {@link WORKER_CHANNEL_OPTIONS} (e.g. a
   * shorter `grpc.keepalive_timeout_ms` to notice a frozen owner sooner).
   */
  readonly channelOptions?: grpc.ChannelOptions;
  /**
   * Credentials of the worker clients: mutual TLS (`--internal-tls-dir`) or, by
   * default, plaintext. Its channel options go under {@link channelOptions}.
   */
  readonly transport?: InternalTransport;
  /** Source of randomness for jitter, in [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** Least time between two "owner still unreachable" warnings for one owner. Default 10,000 ms. */
  readonly outageWarnIntervalMs?: number;
}

/**
 * What {@link CallOptions.signal} needs of an AbortSignal (which satisfies it): the
 * gateway passes a lighter one per call (see capacity-service.ts).
 */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** Options of one {@link Router.call}. */
export interface CallOptions {
  /** Aborts the call (and the attempt in flight): it rejects with CANCELLED. */
  readonly signal?: CancelSignal;
}

const DEFAULT_DEADLINE_MS = 5000;
const DEFAULT_INITIAL_BACKOFF_MS = 20;
const DEFAULT_MAX_BACKOFF_MS = 500;

/**
 * grpc-js channel options for worker channels.
 *
 * Liveness comes from HTTP/2 keepalive pings, not from a per-attempt timeout: while
 * calls are in flight the gateway pings the owner every second, and a ping not
 * answered within 3 s closes the connection, failing its calls UNAVAILABLE, which the
 * router retries. A process that is frozen (SIGSTOP), gone without closing its socket
 * or cut off by the network stops answering pings; one that is merely slow keeps
 * answering them (its event loop runs) and is waited for. The timeout is generous
 * because a busy machine can delay a ping's answer; a false alarm costs one retry with
 * the same request, never a double write. grpc-js servers accept pings at any rate
 * (they enforce no ping policy), so the worker needs no setting for them.
 * No retries by grpc itself (the router decides, with its own deadline and backoff);
 * fast reconnects so a restarted worker is used again soon.
 */
export const WORKER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.keepalive_time_ms": 1000,
  "grpc.keepalive_timeout_ms": 3000,
  "grpc.keepalive_permit_without_calls": 0,
  "grpc.enable_retries": 0,
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
};

/** The error object a grpc-js handler passes to its callback. */
export type GrpcError = Partial<grpc.StatusObject> & Error & { code: grpc.status };

/** Why the last attempt failed: what the caller is told when the budget runs out. */
export interface Failure {
  readonly reason: ErrorReason;
  readonly message: string;
  /** The owner's own RetryInfo delay, when it sent one. */
  readonly retryDelayMs?: number;
  /** The owner named the reason itself (e.g. JOURNAL_UNAVAILABLE): keep it over a later timeout. */
  readonly fromOwner: boolean;
  /** An attempt failed below Berth (transport): a later timeout says so too. */
  readonly unreachable?: boolean;
}

/** What to do with a failed attempt; see {@link classifyFailure}. */
export type FailureClass =
  | { readonly kind: "retry"; readonly reason: Exclude<RetryReason, "moved" | "no_owner"> }
  | { readonly kind: "out_of_time" }
  | { readonly kind: "answer" };

/** Thrown inside the router when an attempt is abandoned because the shard moved. */
class ShardMovedError extends Error {
  override readonly name = "ShardMovedError";
  constructor(
    readonly from: Route,
    readonly to: Route,
  ) {
    super(
      `shard ${from.shard} moved from ${from.owner} (epoch ${from.epoch}) to ${to.owner} (epoch ${to.epoch}) while the call waited`,
    );
  }
}

/**
 * Holds the current ShardMap and one {@link ForwardChannel} (a WorkerService.Forward
 * stream carrying batches of commands) per member address, and forwards commands to
 * pool owners with retries across hand-offs.
 */
export class Router {
  readonly #source: ShardMapSource;
  readonly #logger: Logger | undefined;
  readonly #channels = new Map<string, ForwardChannel>();
  readonly #unsubscribe: () => void;
  readonly #waiters = new Set<() => void>();
  readonly #retries: Counter<"reason"> | undefined;
  readonly #outages: OwnerOutages;
  readonly #defaultDeadlineMs: number;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #channelOptions: grpc.ChannelOptions;
  readonly #credentials: grpc.ChannelCredentials;
  readonly #random: () => number;
  #closed = false;

  constructor(options: RouterOptions) {
    this.#source = options.source;
    this.#logger = options.logger;
    this.#defaultDeadlineMs = options.defaultDeadlineMs ?? DEFAULT_DEADLINE_MS;
    this.#initialBackoffMs = options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS;
    this.#maxBackoffMs = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    const transport = options.transport ?? plaintextTransport();
    this.#credentials = transport.channelCredentials;
    this.#channelOptions = {
      ...WORKER_CHANNEL_OPTIONS,
      ...transport.channelOptions,
      ...options.channelOptions,
    };
    this.#random = options.random ?? Math.random;
    this.#outages = new OwnerOutages({
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.registry ? { registry: options.registry } : {}),
      ...(options.outageWarnIntervalMs === undefined
        ? {}
        : { warnIntervalMs: options.outageWarnIntervalMs }),
    });
    if (options.registry) {
      this.#retries = new Counter({
        name: "berth_gateway_forward_retries_total",
        help: "Forwarded attempts the gateway retried, by reason (not_owner, unavailable, unreachable, moved, no_owner).",
        labelNames: ["reason"],
        registers: [options.registry],
      });
    }
    this.#unsubscribe = this.#source.subscribe((map) => this.#onMap(map));
  }

  /**
   * Sends a command to the owner of `pool`'s shard with the shard's epoch. One attempt
   * may take the whole budget: a live owner is waited for. Retries, with jittered
   * backoff until `deadline`, on NOT_OWNER, on the owner's own UNAVAILABLE, on an
   * unreachable owner (transport failures, unanswered keepalive pings) and when a newer
   * ShardMap names another owner while an attempt waits.
   *
   * @param method the WorkerService method
   * @param pool the pool id that decides the shard (for release: the pool the reservation id names)
   * @param request the public request (or pool spec) to forward
   * @param deadline absolute deadline (Date or epoch ms); undefined or Infinity means the default budget
   * @returns the owner's answer
   * @throws a grpc status error: the owner's own (INVALID_ARGUMENT, NOT_FOUND,
   *   FAILED_PRECONDITION with a domain reason, …) unchanged with its details, or
   *   UNAVAILABLE with RetryInfo when no owner answered in time, with the owner's reason
   *   when it gave one (JOURNAL_UNAVAILABLE, SHARD_RECOVERING) and OWNER_UNAVAILABLE or
   *   NO_OWNER otherwise
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
    // RetryInfo) reaches the caller instead of its own DEADLINE_EXCEEDED: a tenth of
    // the budget, at most 250 ms (room for a busy event loop and the way back).
    const giveUpAt = end - Math.min(250, Math.max(5, (end - started) / 10));
    let failure: Failure = {
      reason: "NO_OWNER",
      message: "no ShardMap is known yet",
      fromOwner: false,
    };
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
      let minDelay = 0;
      if (route === undefined) {
        failure = { reason: "NO_OWNER", message: noRouteMessage(map, pool), fromOwner: false };
        retryReason = "no_owner";
      } else {
        if (giveUpAt <= Date.now()) break;
        try {
          const response = await this.#attempt(
            method,
            pool,
            route,
            request,
            giveUpAt,
            options.signal,
            callToken,
          );
          this.#outages.answered(route.owner);
          return response;
        } catch (e: unknown) {
          if (e instanceof ShardMovedError) {
            retryReason = "moved";
            failure = { reason: "OWNER_UNAVAILABLE", message: e.message, fromOwner: false };
            this.#debugRetry(pool, route, attempt, retryReason, e.message);
            seenRevision = map?.revision ?? -1;
            this.#retries?.inc({ reason: retryReason });
            continue;
          }
          const s = parseRichStatus(e);
          const verdict = classifyFailure(s, options.signal);
          if (verdict.kind === "answer") {
            // A call its caller ended (cancel, deadline) says nothing of the owner.
            if (options.signal?.aborted !== true) this.#outages.answered(route.owner);
            throw passThrough(e, s);
          }
          if (verdict.kind === "out_of_time") {
            failure = outOfTime(route, failure);
            break;
          }
          retryReason = verdict.reason;
          const next = retryAfter(verdict.reason, s, route);
          failure = next.failure;
          minDelay = next.minDelayMs;
          if (next.neededEpoch !== undefined) neededEpoch = next.neededEpoch;
          if (next.unreachable === undefined) this.#outages.answered(route.owner);
          else this.#outages.unreachable(route, next.unreachable);
          this.#debugRetry(pool, route, attempt, retryReason, s.message);
        }
      }
      if (route === undefined)
        this.#debugRetry(pool, undefined, attempt, retryReason, failure.message);
      seenRevision = map?.revision ?? -1;
      const delay = Math.max(minDelay, this.#backoff(attempt));
      if (Date.now() + Math.min(delay, 1) >= giveUpAt) break;
      this.#retries?.inc({ reason: retryReason });
      const shard = route?.shard;
      await this.#waitFor(
        (m) =>
          m.revision > seenRevision &&
          (neededEpoch === 0 ||
            shard === undefined ||
            (m.shards[shard]?.epoch ?? 0) >= neededEpoch),
        // A newer map cuts the backoff short (not the owner's own retry delay). Waiting
        // for a newer epoch may take up to the deadline, but retry at least every max
        // backoff anyway, in case the NOT_OWNER came from a worker that is itself behind.
        Math.min(giveUpAt, Date.now() + (neededEpoch > 0 ? this.#maxBackoffMs : delay)),
        options.signal,
      );
    }
    throw noOwnerAnswered(pool, failure, this.#maxBackoffMs);
  }

  #debugRetry(
    pool: string,
    route: Route | undefined,
    attempt: number,
    retryReason: RetryReason,
    detail: string,
  ): void {
    this.#logger?.debug(
      {
        pool,
        shard: route?.shard,
        epoch: route?.epoch,
        owner: route?.owner,
        attempt,
        retryReason,
        detail,
      },
      "forward attempt failed; retrying",
    );
  }

  /** Closes every worker channel and stops following the ShardMap source. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const wake of this.#waiters) wake();
    for (const channel of this.#channels.values()) channel.close();
    this.#channels.clear();
  }

  /** The delay after failed attempt `attempt` (0-based): equal jitter, so retries from many callers spread out. */
  #backoff(attempt: number): number {
    return backoffDelayMs(
      attempt + 1,
      { initialMs: this.#initialBackoffMs, maxMs: this.#maxBackoffMs, jitter: "equal" },
      this.#random,
    );
  }

  #channel(address: string): ForwardChannel {
    let channel = this.#channels.get(address);
    if (channel === undefined) {
      channel = new ForwardChannel({
        address,
        credentials: this.#credentials,
        channelOptions: this.#channelOptions,
      });
      this.#channels.set(address, channel);
    }
    return channel;
  }

  /**
   * One attempt at `route`, until `deadline`. Rejects with a {@link ShardMovedError}
   * (after cancelling the call) as soon as a newer ShardMap names another owner for
   * the pool's shard: the old owner may be frozen, and waiting for it would only hold
   * the caller. Whatever the old owner does with the command afterwards is safe: it
   * cannot append past the new owner's fence, and a write that landed first is
   * recognised by the new owner when the command is retried there.
   */
  #attempt<M extends RouterMethod>(
    method: M,
    pool: string,
    route: Route,
    request: RouterMethods[M]["request"],
    deadline: number,
    signal: CancelSignal | undefined,
    callToken: string,
  ): Promise<RouterMethods[M]["response"]> {
    const channel = this.#channel(route.address);
    return new Promise((resolve, reject) => {
      let movedTo: Route | undefined;
      const onMap = (): void => {
        const now = resolveRoute(this.#source.current(), pool);
        if (now !== undefined && (now.owner !== route.owner || now.address !== route.address)) {
          movedTo = now;
          ticket.cancel();
        }
      };
      const onAbort = (): void => ticket.cancel();
      const ticket = channel.send(
        method,
        request,
        route.epoch,
        callToken,
        deadline,
        (err, response) => {
          signal?.removeEventListener("abort", onAbort);
          this.#waiters.delete(onMap);
          if (err) reject(movedTo === undefined ? err : new ShardMovedError(route, movedTo));
          else resolve(response as RouterMethods[M]["response"]);
        },
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(onMap);
    });
  }

  #onMap(map: internal.ShardMap): void {
    if (this.#closed) return;
    this.#outages.retain(new Set(map.members.map((m) => m.id)));
    // Waiters first: an attempt on a member that left settles as moved, not as cut off.
    for (const wake of this.#waiters) wake();
    const live = new Set(map.members.map((m) => m.address));
    for (const [address, channel] of this.#channels) {
      if (!live.has(address)) {
        channel.close();
        this.#channels.delete(address);
      }
    }
  }

  /**
   * Resolves when a map satisfying `ready` is current, at `until`, on abort, or on
   * close — whichever comes first.
   */
  #waitFor(
    ready: (map: internal.ShardMap) => boolean,
    until: number,
    signal: CancelSignal | undefined,
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

function throwIfAborted(signal: CancelSignal | undefined): void {
  if (signal?.aborted) {
    throw Object.assign(new Error("the call was cancelled"), {
      code: grpc.status.CANCELLED,
      details: "the call was cancelled",
    });
  }
}

/**
 * What to do with a failed attempt, from its status:
 * - `retry` / `not_owner`: FAILED_PRECONDITION NOT_OWNER, or WRITES_FENCED;
 * - `retry` / `unavailable`: UNAVAILABLE carrying a berth.dev ErrorInfo — the owner
 *   itself said it cannot serve now (recovering, journal unavailable, shutting down);
 * - `retry` / `unreachable`: a failure from below Berth, so the owner may never have
 *   answered (for a write the outcome is unknown: retrying with the same request is how
 *   to learn it): UNAVAILABLE without a berth.dev reason (connection refused or lost, a
 *   keepalive ping unanswered), or CANCELLED the caller did not ask for, UNKNOWN or
 *   INTERNAL without one — what grpc-js reports when the worker's process or connection
 *   goes away mid-call;
 * - `out_of_time`: DEADLINE_EXCEEDED: the call's budget is spent;
 * - `answer`: anything else is the owner's answer, passed through (every answer a worker
 *   gives on purpose carries an ErrorInfo of domain berth.dev).
 */
export function classifyFailure(
  s: ParsedRichStatus,
  signal?: { readonly aborted: boolean },
): FailureClass {
  const berth = s.domain === ERROR_DOMAIN && s.reason !== undefined && s.reason !== "";
  if (s.reason === "NOT_OWNER" || s.reason === "WRITES_FENCED") {
    return { kind: "retry", reason: "not_owner" };
  }
  switch (s.code) {
    case grpc.status.UNAVAILABLE:
      return { kind: "retry", reason: berth ? "unavailable" : "unreachable" };
    case grpc.status.DEADLINE_EXCEEDED:
      return signal?.aborted ? { kind: "answer" } : { kind: "out_of_time" };
    case grpc.status.CANCELLED:
      return !berth && signal?.aborted !== true
        ? { kind: "retry", reason: "unreachable" }
        : { kind: "answer" };
    case grpc.status.UNKNOWN:
    case grpc.status.INTERNAL:
      return berth ? { kind: "answer" } : { kind: "retry", reason: "unreachable" };
    default:
      return { kind: "answer" };
  }
}

/** The call's answer when its budget ran out with no owner's answer: UNAVAILABLE, with why. */
function noOwnerAnswered(pool: string, failure: Failure, retryDelayMs: number): GrpcError {
  return richStatus(
    grpc.status.UNAVAILABLE,
    `no owner of pool ${JSON.stringify(pool)} answered within the deadline: ${failure.message}`,
    {
      reason: failure.reason,
      metadata: { pool },
      retryDelayMs: failure.retryDelayMs ?? retryDelayMs,
    },
  );
}

/** Where `route` points, for messages: `owner (address) of shard N`. */
function describeRoute(route: Route): string {
  return `${route.owner} (${route.address}) of shard ${route.shard}`;
}

/**
 * The failure to report when the deadline lands in an attempt to `route`. Which attempt
 * it lands in is chance: a reason the owner gave earlier is kept, and an earlier
 * transport failure is named, so the answer does not depend on it.
 */
function outOfTime(route: Route, previous: Failure): Failure {
  if (previous.fromOwner) return previous;
  const earlier = previous.unreachable ? `; before that, ${previous.message}` : "";
  return {
    reason: "OWNER_UNAVAILABLE",
    message: `owner ${describeRoute(route)} did not answer in time${earlier}`,
    fromOwner: false,
  };
}

/** What a retryable failure of an attempt to `route` means for the next one. */
export interface RetryPlan {
  /** What the call reports if no later attempt succeeds. */
  readonly failure: Failure;
  /** The owner's own RetryInfo: wait at least this long. */
  readonly minDelayMs: number;
  /** The owner named a newer epoch for the shard: wait for a map that has it. */
  readonly neededEpoch?: number;
  /** Set when the owner did not answer (transport failure): what went wrong. */
  readonly unreachable?: string;
}

/** The plan after an attempt failed with `s`, classified `reason` by {@link classifyFailure}. */
export function retryAfter(
  reason: Exclude<RetryReason, "moved" | "no_owner">,
  s: ParsedRichStatus,
  route: Route,
): RetryPlan {
  switch (reason) {
    case "not_owner": {
      const named = Number(s.metadata.epoch);
      return {
        failure: {
          reason: "OWNER_UNAVAILABLE",
          message: `${route.owner} (${route.address}) does not own shard ${route.shard} at epoch ${route.epoch}: ${s.message}`,
          fromOwner: false,
        },
        minDelayMs: 0,
        ...(Number.isSafeInteger(named) && named > route.epoch ? { neededEpoch: named } : {}),
      };
    }
    case "unavailable":
      return {
        failure: {
          reason:
            s.reason !== undefined && isErrorReason(s.reason) ? s.reason : "OWNER_UNAVAILABLE",
          message: `owner ${describeRoute(route)} answered: ${s.message}`,
          ...(s.retryDelayMs === undefined ? {} : { retryDelayMs: s.retryDelayMs }),
          fromOwner: true,
        },
        minDelayMs: s.retryDelayMs ?? 0,
      };
    case "unreachable": {
      const detail = `${grpc.status[s.code] ?? s.code}: ${s.message}`;
      return {
        failure: {
          reason: "OWNER_UNAVAILABLE",
          message: `owner ${describeRoute(route)} is unreachable: ${detail}`,
          fromOwner: false,
          unreachable: true,
        },
        minDelayMs: 0,
        unreachable: detail,
      };
    }
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
