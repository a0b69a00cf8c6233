// A KubeConfig whose requests share connections to kube-apiserver.
//
// @kubernetes/client-node 2.0.1 builds a new undici Agent for every request
// (`KubeConfig.applySecurityAuthentication` → `createDispatcher`), so every API call
// pays a new TCP + TLS handshake: measured here, 9.2 ms of client CPU and 16 ms per
// call against 1.6 ms and 4.4 ms with a kept-alive connection (docs/benchmarks.md,
// Kubernetes mode, item 5). Lease renewals, elections and status writes all paid it.
import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import { subscribe } from "node:diagnostics_channel";
import {
  type Cluster,
  type DispatcherOptions,
  KubeConfig,
  type RequestContext,
} from "@kubernetes/client-node";

type Dispatcher = NonNullable<ReturnType<RequestContext["getDispatcher"]>>;

/** What one applySecurityAuthentication call learnt inside the library. */
interface Slot {
  key?: string;
  cached?: Dispatcher;
}

/**
 * A {@link KubeConfig} that keeps one connection pool (undici Agent) for as long as the
 * TLS material it was built from stays the same, instead of one per request. The
 * material is read again for every request, as the library does: a rotated CA or
 * client certificate gives a new pool for new requests, and the old one's connections
 * end when idle. Proxied clusters are left to the library.
 *
 * Works through the library's public `createDispatcherOptions` hook, called inside
 * `applySecurityAuthentication` with the options of the request at hand; an
 * AsyncLocalStorage ties that call to its request, so concurrent requests never
 * swap pools. Call {@link close} when the process is done with the API server.
 */
export class PooledKubeConfig extends KubeConfig {
  readonly #calls = new AsyncLocalStorage<Slot>();
  #pool: { readonly key: string; readonly dispatcher: Dispatcher } | undefined;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    const slot: Slot = {};
    await this.#calls.run(slot, () => super.applySecurityAuthentication(context));
    if (slot.key === undefined) return;
    if (slot.cached !== undefined) {
      context.setDispatcher(slot.cached);
      return;
    }
    if (this.#pool?.key === slot.key) {
      // A concurrent first request made the pool meanwhile: share it. The Agent made
      // for this request has opened nothing yet.
      context.setDispatcher(this.#pool.dispatcher);
      return;
    }
    const made = context.getDispatcher();
    if (made === undefined) return;
    // A replaced pool is not closed: a request may hold it and not have dispatched yet
    // (undici refuses dispatches on a closed Agent). Its idle connections end with
    // undici's keep-alive timeout.
    this.#pool = { key: slot.key, dispatcher: made };
  }

  override createDispatcherOptions(
    cluster: Cluster | null,
    agentOptions: Parameters<KubeConfig["createDispatcherOptions"]>[1],
  ): DispatcherOptions {
    const options = super.createDispatcherOptions(cluster, agentOptions);
    const slot = this.#calls.getStore();
    if (slot === undefined || options.type !== "agent") return options;
    slot.key = keyOf(options.connect);
    if (this.#pool?.key === slot.key) {
      slot.cached = this.#pool.dispatcher;
      return { type: "none" };
    }
    return options;
  }

  /** True when `dispatcher` is this config's shared pool (not to be destroyed by one request). */
  shares(dispatcher: Dispatcher | undefined): boolean {
    return dispatcher !== undefined && dispatcher === this.#pool?.dispatcher;
  }

  /** Closes the shared pool: running requests finish, idle connections go. */
  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.dispatcher.close().catch(() => undefined);
  }
}

/** A digest of the TLS options a pool's connections are made with. */
function keyOf(connect: object): string {
  const hash = createHash("sha256");
  for (const [k, v] of Object.entries(connect).sort(([a], [b]) => a.localeCompare(b))) {
    hash.update(k).update("\0");
    if (Buffer.isBuffer(v)) hash.update(v);
    else if (Array.isArray(v)) for (const x of v) hash.update(String(x)).update("\0");
    else hash.update(String(v));
    hash.update("\0");
  }
  return hash.digest("hex");
}

/**
 * The kubeconfig of a Berth process: from `file` when given, else the default
 * (in-cluster service account, $KUBECONFIG or ~/.kube/config), with pooled connections.
 */
export function loadKubeConfig(file?: string): PooledKubeConfig {
  const kc = new PooledKubeConfig();
  if (file !== undefined) kc.loadFromFile(file);
  else kc.loadFromDefault();
  for (const c of kc.getClusters()) sinkStreamErrorsTo(c.server);
  return kc;
}

/** host:port of the API servers whose HTTP/2 streams get an error sink. */
const sunkAuthorities = new Set<string>();

/**
 * Gives every HTTP/2 stream this process opens to `server` (a kube-apiserver URL) a
 * no-op 'error' listener, beside whatever listeners undici attaches.
 *
 * undici 8.13 (which @kubernetes/client-node 2 uses, with HTTP/2 to kube-apiserver)
 * stops listening on a stream once it is done with it; if the session is destroyed
 * while such a stream has not closed yet — a watch aborted just before its pool is
 * closed, as at shutdown — Node emits the ClientDestroyedError on it with no listener:
 * an uncaught exception. It crashed a worker with exit 1 after a clean hand-off
 * (failover.k8s test, CI rehearsal 2026-12-04). undici already adds such a sink in
 * some paths (its issue 5936); this adds it on every stream, from creation. Errors of a
 * request still in flight reach undici's own listeners as before. Idempotent.
 */
export function sinkStreamErrorsTo(server: string): void {
  let authority: string;
  try {
    const url = new URL(server);
    authority =
      url.host === ""
        ? ""
        : `${url.hostname}:${url.port || (url.protocol === "http:" ? "80" : "443")}`;
  } catch {
    return;
  }
  if (authority === "" || sunkAuthorities.has(authority)) return;
  if (sunkAuthorities.size === 0) subscribe("http2.client.stream.created", onStreamCreated);
  sunkAuthorities.add(authority);
}

function onStreamCreated(message: unknown): void {
  const { stream, headers } = message as {
    stream?: { on(event: "error", listener: () => void): void };
    headers?: Record<string, unknown>;
  };
  const authority = headers?.[":authority"];
  if (stream === undefined || typeof authority !== "string") return;
  const withPort =
    authority.includes(":") && !authority.endsWith("]") ? authority : `${authority}:443`;
  if (sunkAuthorities.has(withPort)) stream.on("error", ignoreStreamError);
}

function ignoreStreamError(): void {}
