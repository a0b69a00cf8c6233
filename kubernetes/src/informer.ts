// A list+watch cache of one kind of object, as client-go's Reflector keeps it: list
// (paged), then watch from the list's resourceVersion with bookmarks; after any
// error or end of the watch, watch again from the last resourceVersion seen, with
// backoff and jitter; on 410 Gone (that resourceVersion is older than what the
// server still has) list again and reconcile the cache with the list, telling
// listeners what changed (objects gone meanwhile are "deleted").
//
// Built on client-node's HTTP layer (RequestContext + KubeConfig authentication +
// IsomorphicFetchHttpLibrary: the same TLS, credentials and fetch every generated
// API call uses), not on its ListWatch/makeInformer nor its Watch class, because:
// - ListWatch stops for good after any error but 410 (the caller must restart it);
//   stop() cannot cancel its backoff sleep nor a watch whose headers have not come
//   yet; and its typed list functions deserialize objects (Dates, class instances)
//   while its watch events are raw JSON, so one cache mixes two shapes;
// - Watch hands back its AbortController only once the response headers arrived (a
//   stop() before that leaves the request open), and aborts any watch quiet for
//   30 s — shorter than the API server's bookmark period, so an idle watch would
//   restart every 30 s.
// Here one AbortSignal per start() cancels whatever is in flight — request, stream or
// sleep — at once, and every object in the cache is the server's JSON.

import { type BackoffPolicy, backoffDelayMs } from "@berth/proto";
import {
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  type KubeConfig,
  RequestContext,
  type ResponseContext,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { PooledKubeConfig } from "./kube-config.js";
import { LogThrottle } from "./log-throttle.js";

/** The `metadata` fields the informer reads. */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  [k: string]: unknown;
}

/** Any Kubernetes object, as the API server's JSON. */
export interface KubeObject {
  metadata?: ObjectMeta & Record<string, unknown>;
  [k: string]: unknown;
}

/**
 * A change to the cache. `deleted` carries the last state the informer knew (the
 * server's final state when a watch reported the deletion).
 */
export type InformerEvent<T> = {
  type: "added" | "modified" | "deleted";
  key: string;
  object: T;
};

/** Options of a {@link ResourceInformer}. */
export interface ResourceInformerOptions {
  readonly kubeConfig: KubeConfig;
  /**
   * List path of the objects, e.g. `/apis/berth.dev/v1alpha1/namespaces/ns/capacitypools`
   * or `/apis/coordination.k8s.io/v1/namespaces/ns/leases`.
   */
  readonly path: string;
  readonly labelSelector?: string;
  /** e.g. `metadata.name=berth` (custom resources support metadata.name and metadata.namespace). */
  readonly fieldSelector?: string;
  readonly logger?: Logger;
  /** Names this informer in logs (default: the path). */
  readonly name?: string;
  /**
   * Delay before watching (or listing) again after an error or the end of a watch:
   * starts at `initial`, doubles per attempt that made no progress up to `max`, with
   * equal jitter (uniform in [d/2, d), {@link backoffDelayMs}). Default
   * `{ initial: 500, max: 10_000 }`.
   */
  readonly restartDelayMs?: { readonly initial: number; readonly max: number };
  /**
   * How long the server keeps one watch open (`timeoutSeconds`); default random
   * in 300–600 s, as client-go. A quiet watch is abandoned 30 s past it.
   */
  readonly watchTimeoutSeconds?: number;
  /** Objects per list page (`limit`); default 500. */
  readonly pageSize?: number;
  /**
   * Applied to every object before it is cached and emitted, as client-go's
   * `SetTransform`: drop what nobody reads (see {@link stripManagedFields}).
   */
  readonly transform?: <O extends KubeObject>(object: O) => O;
}

/** Counters of a {@link ResourceInformer}, for metrics and tests. */
export interface ResourceInformerStats {
  /** Complete lists done (the first one, then one per 410 Gone). */
  lists: number;
  /** Watches (or lists) started again after an error or the end of a watch. */
  watchRestarts: number;
  /** The last error, for people; kept after recovery. */
  lastError: string | undefined;
  /** Whether a watch is open now (HTTP 200 received and not ended). */
  connected: boolean;
}

/** A Status the API server answered with (HTTP error or watch ERROR event). */
class ApiStatusError extends Error {
  override readonly name = "ApiStatusError";
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(`HTTP ${code}: ${message}`);
  }
}

const DEFAULT_RESTART_DELAY_MS = { initial: 500, max: 10_000 } as const;
// client-go's reflector: a watch lasts minWatchTimeout × (1 + rand), min 5 minutes.
const MIN_WATCH_TIMEOUT_S = 300;
const WATCH_IDLE_GRACE_MS = 30_000;

interface ListPage<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T & { code?: number; message?: string };
}

/**
 * The object without `metadata.managedFields` (server-side apply bookkeeping, often
 * the larger part of a small object's metadata). Safe for objects that are written
 * back whole: a PUT without managedFields keeps the server's.
 */
export function stripManagedFields<O extends KubeObject>(object: O): O {
  const metadata = object.metadata;
  if (metadata === undefined || !("managedFields" in metadata)) return object;
  const { managedFields: _, ...rest } = metadata;
  return { ...object, metadata: rest };
}

/** The annotation `kubectl apply` keeps its last applied manifest in (a copy of the spec). */
export const LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration";

/**
 * The object without kubectl's last-applied annotation (a second copy of every
 * applied object). Only for objects that are never written back whole: a PUT without
 * it would delete it, and the next `kubectl apply` would diff against nothing. PATCHes
 * (finalizers, status) are fine.
 */
export function stripLastAppliedConfiguration<O extends KubeObject>(object: O): O {
  const annotations = object.metadata?.annotations as Record<string, string> | undefined;
  if (annotations === undefined || !(LAST_APPLIED_ANNOTATION in annotations)) return object;
  const { [LAST_APPLIED_ANNOTATION]: _, ...rest } = annotations;
  return {
    ...object,
    metadata: { ...object.metadata, annotations: rest },
  };
}

/**
 * The cache key of an object: `namespace/name`, or `name` for a cluster-scoped one.
 */
export function objectKey(object: KubeObject): string {
  const name = object.metadata?.name ?? "";
  const namespace = object.metadata?.namespace;
  return namespace ? `${namespace}/${name}` : name;
}

/**
 * Keeps a cache of the objects at one list path, up to date through a watch that
 * survives API server restarts, dropped connections and expired resourceVersions.
 * Listeners hear every change; the cache is updated before they are called.
 */
export class ResourceInformer<T extends KubeObject> {
  readonly #o: ResourceInformerOptions & { readonly name: string };
  readonly #http = new IsomorphicFetchHttpLibrary();
  readonly #listeners = new Set<(e: InformerEvent<T>) => void>();
  readonly #throttle = new LogThrottle();
  readonly #stats: ResourceInformerStats = {
    lists: 0,
    watchRestarts: 0,
    lastError: undefined,
    connected: false,
  };
  #cache = new Map<string, T>();
  /** Where the next watch starts; undefined: list first. */
  #resourceVersion: string | undefined;
  #run: AbortController | undefined;
  /** Counts lists and watch events: an attempt that moved it made progress. */
  #progress = 0;
  #hasSynced = false;
  readonly #syncWaiters = new Set<() => void>();

  constructor(options: ResourceInformerOptions) {
    const delays = options.restartDelayMs ?? DEFAULT_RESTART_DELAY_MS;
    if (!(delays.initial > 0 && delays.max >= delays.initial)) {
      throw new RangeError("restartDelayMs needs 0 < initial <= max");
    }
    if (options.watchTimeoutSeconds !== undefined && !(options.watchTimeoutSeconds >= 1)) {
      throw new RangeError("watchTimeoutSeconds must be at least 1");
    }
    this.#o = { ...options, name: options.name ?? options.path };
  }

  /** True once the first complete list is in the cache. */
  get hasSynced(): boolean {
    return this.#hasSynced;
  }

  /** Starts listing and watching (in the background). Idempotent. */
  start(): void {
    if (this.#run !== undefined) return;
    const run = new AbortController();
    this.#run = run;
    void this.#loop(run.signal);
  }

  /**
   * Stops at once: the request or watch in flight is aborted and no timer is left.
   * The cache and listeners stay; {@link start} resumes from where it was. Idempotent.
   */
  stop(): void {
    this.#run?.abort();
    this.#run = undefined;
    this.#stats.connected = false;
  }

  /**
   * Resolves once the first complete list is in the cache (at once if it already
   * is); rejects with the signal's reason if `signal` aborts first.
   */
  synced(signal?: AbortSignal): Promise<void> {
    if (this.#hasSynced) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const done = (): void => {
        signal?.removeEventListener("abort", aborted);
        resolve();
      };
      const aborted = (): void => {
        this.#syncWaiters.delete(done);
        reject(signal?.reason);
      };
      this.#syncWaiters.add(done);
      signal?.addEventListener("abort", aborted, { once: true });
    });
  }

  /** Every object in the cache. */
  list(): T[] {
    return [...this.#cache.values()];
  }

  /** The cached object with this key (`namespace/name`, or `name` if cluster-scoped). */
  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  /**
   * Calls `listener` for every later change, including differences a re-list finds.
   * A listener that throws is logged and does not stop the others.
   *
   * @returns a function that removes the listener
   */
  onChange(listener: (e: InformerEvent<T>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Counters: lists, watch restarts, the last error, and whether a watch is open. */
  stats(): ResourceInformerStats {
    return { ...this.#stats };
  }

  async #loop(signal: AbortSignal): Promise<void> {
    const { initial, max } = this.#o.restartDelayMs ?? DEFAULT_RESTART_DELAY_MS;
    const backoff: BackoffPolicy = { initialMs: initial, maxMs: max, jitter: "equal" };
    let attempt = 0;
    for (;;) {
      const before = this.#progress;
      try {
        if (this.#resourceVersion === undefined) await this.#list(signal);
        await this.#watch(signal);
        this.#o.logger?.debug({ informer: this.#o.name }, "watch ended; watching again");
      } catch (e: unknown) {
        if (signal.aborted) return;
        this.#failed(e);
      }
      if (signal.aborted) return;
      this.#stats.connected = false;
      // An attempt that listed or delivered events resets the backoff.
      attempt = this.#progress !== before ? 1 : attempt + 1;
      await sleep(backoffDelayMs(attempt, backoff), signal);
      if (signal.aborted) return;
      this.#stats.watchRestarts++;
    }
  }

  #failed(e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    this.#stats.lastError = message;
    const gone = e instanceof ApiStatusError && e.code === 410;
    if (gone) {
      // The resourceVersion we hold is older than the server keeps: list again.
      this.#resourceVersion = undefined;
      this.#o.logger?.info(
        { informer: this.#o.name, err: message },
        "resourceVersion expired (410 Gone); listing again",
      );
      return;
    }
    const d = this.#throttle.failure(message);
    if (d.log) {
      this.#o.logger?.warn(
        { informer: this.#o.name, err: message, suppressed: d.suppressed },
        "list/watch failed; retrying with backoff",
      );
    }
  }

  #recovered(): void {
    const failures = this.#throttle.recovered();
    if (failures > 0) {
      this.#o.logger?.info({ informer: this.#o.name, failures }, "watching again");
    }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const items: T[] = [];
    let token: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const { response, close } = await this.#request(signal, {
        limit: String(this.#o.pageSize ?? 500),
        ...(token === undefined ? {} : { continue: token }),
      });
      let page: ListPage<T>;
      try {
        page = JSON.parse(await response.body.text()) as ListPage<T>;
      } finally {
        close();
      }
      // List items carry no apiVersion/kind; watch events do. Give every cached object both.
      const kind = page.kind?.replace(/List$/, "");
      const transform = this.#o.transform;
      for (const item of page.items ?? []) {
        const object = { apiVersion: page.apiVersion, kind, ...item };
        items.push(transform === undefined ? object : transform(object));
      }
      token = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion;
    } while (token !== undefined);
    if (signal.aborted) return;
    this.#replace(items, resourceVersion);
  }

  /** Makes the cache equal to a fresh list and emits the differences. */
  #replace(items: readonly T[], resourceVersion: string | undefined): void {
    const next = new Map<string, T>();
    for (const item of items) next.set(objectKey(item), item);
    const events: InformerEvent<T>[] = [];
    for (const [key, old] of this.#cache) {
      if (!next.has(key)) events.push({ type: "deleted", key, object: old });
    }
    for (const [key, object] of next) {
      const old = this.#cache.get(key);
      if (old === undefined) events.push({ type: "added", key, object });
      else if (old.metadata?.resourceVersion !== object.metadata?.resourceVersion) {
        events.push({ type: "modified", key, object });
      }
    }
    this.#cache = next;
    this.#resourceVersion = resourceVersion ?? "";
    this.#stats.lists++;
    this.#progress++;
    this.#o.logger?.debug(
      { informer: this.#o.name, objects: next.size, changes: events.length, resourceVersion },
      "listed",
    );
    for (const e of events) this.#emit(e);
    if (!this.#hasSynced) {
      this.#hasSynced = true;
      for (const resolve of [...this.#syncWaiters]) resolve();
      this.#syncWaiters.clear();
    }
  }

  /** Follows one watch until it ends (normally, or by throwing). */
  async #watch(signal: AbortSignal): Promise<void> {
    const timeoutSeconds =
      this.#o.watchTimeoutSeconds ?? Math.floor(MIN_WATCH_TIMEOUT_S * (1 + Math.random()));
    // A watch that stays silent well past its timeout (no event, no bookmark, no end)
    // sits on a dead connection: abandon it.
    const idle = new AbortController();
    const watchSignal = AbortSignal.any([signal, idle.signal]);
    let timer: NodeJS.Timeout | undefined;
    const resetIdle = (): void => {
      clearTimeout(timer);
      timer = setTimeout(
        () => idle.abort(new Error(`watch silent for over ${timeoutSeconds} s; reconnecting`)),
        timeoutSeconds * 1000 + WATCH_IDLE_GRACE_MS,
      );
    };
    resetIdle();
    let close = (): void => {};
    try {
      const opened = await this.#request(watchSignal, {
        watch: "true",
        resourceVersion: this.#resourceVersion ?? "",
        allowWatchBookmarks: "true",
        timeoutSeconds: String(timeoutSeconds),
      });
      close = opened.close;
      const body = opened.response.body.stream();
      if (body === null) throw new Error("watch response has no body");
      if (signal.aborted) return;
      this.#stats.connected = true;
      this.#recovered();
      let buffered = "";
      for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
        resetIdle();
        buffered += chunk;
        for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line !== "" && !signal.aborted) this.#apply(JSON.parse(line) as WatchEvent<T>);
        }
      }
    } finally {
      clearTimeout(timer);
      close();
    }
  }

  #apply(event: WatchEvent<T>): void {
    if (event.type === "ERROR") {
      const status = event.object;
      throw new ApiStatusError(status.code ?? 0, status.message ?? "watch error");
    }
    const object = this.#o.transform === undefined ? event.object : this.#o.transform(event.object);
    const resourceVersion = object.metadata?.resourceVersion;
    if (resourceVersion !== undefined) this.#resourceVersion = resourceVersion;
    this.#progress++;
    if (event.type !== "ADDED" && event.type !== "MODIFIED" && event.type !== "DELETED") return;
    const key = objectKey(object);
    const old = this.#cache.get(key);
    if (event.type === "DELETED") {
      if (old === undefined) return;
      this.#cache.delete(key);
      this.#emit({ type: "deleted", key, object });
      return;
    }
    if (old !== undefined && old.metadata?.resourceVersion === resourceVersion) return;
    this.#cache.set(key, object);
    this.#emit({ type: old === undefined ? "added" : "modified", key, object });
  }

  #emit(e: InformerEvent<T>): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(e);
      } catch (err: unknown) {
        this.#o.logger?.error(
          { informer: this.#o.name, key: e.key, event: e.type, err },
          "informer listener threw",
        );
      }
    }
  }

  /**
   * GET on the list path. Resolves with a 2xx response and a `close` to call once
   * done with its body; throws ApiStatusError for any other status.
   */
  async #request(
    signal: AbortSignal,
    query: Record<string, string>,
  ): Promise<{ readonly response: ResponseContext; readonly close: () => void }> {
    const { kubeConfig, path, labelSelector, fieldSelector } = this.#o;
    const server = kubeConfig.getCurrentCluster()?.server;
    if (server === undefined) throw new Error("the kubeconfig has no current cluster");
    const url = new URL(server.replace(/\/$/, "") + path);
    const params = {
      ...query,
      ...(labelSelector === undefined ? {} : { labelSelector }),
      ...(fieldSelector === undefined ? {} : { fieldSelector }),
    };
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const context = new RequestContext(url.toString(), HttpMethod.GET);
    context.setHeaderParam("Accept", "application/json");
    context.setSignal(signal);
    await kubeConfig.applySecurityAuthentication(context);
    // A plain KubeConfig makes a connection pool per request: close it with the request
    // (or at once on abort), so that no socket outlives a list, a watch or stop(). A
    // PooledKubeConfig's shared pool stays; aborting the request (the signal above)
    // ends its own connection's use.
    const dispatcher = context.getDispatcher();
    const pool =
      kubeConfig instanceof PooledKubeConfig && kubeConfig.shares(dispatcher)
        ? undefined
        : dispatcher;
    const close = (): void => {
      signal.removeEventListener("abort", close);
      pool?.destroy().catch(() => undefined);
    };
    signal.addEventListener("abort", close, { once: true });
    try {
      const response = await this.#http.send(context).toPromise();
      if (response.httpStatusCode >= 200 && response.httpStatusCode < 300) {
        return { response, close };
      }
      const body = await response.body.text().catch(() => "");
      throw new ApiStatusError(response.httpStatusCode, statusMessage(body));
    } catch (e: unknown) {
      close();
      throw e;
    }
  }
}

function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown };
    if (typeof status.message === "string") return status.message;
  } catch {}
  return body.slice(0, 200) || "no body";
}

/** Resolves after `ms`, or at once when `signal` aborts (no timer left behind). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
