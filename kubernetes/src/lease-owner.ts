// Who owns a Lease, for Kubernetes garbage collection: the controller of the pod its
// holder runs in (a worker pod's StatefulSet, an operator pod's ReplicaSet, which its
// Deployment owns). Deleting that controller — `helm uninstall` — then deletes the
// Lease, even when the holder could not delete it itself (its RBAC went first, or it
// was SIGKILLed); a pod restart keeps it, since the controller stays.
//
// The owner is copied as a plain owner: no `controller` (the Lease is not the
// controller's to adopt or orphan) and no `blockOwnerDeletion` (setting it needs
// `update` on the owner's finalizers subresource, a right no Berth component has).
//
// The pod is read at start. A failed read (kube-apiserver unreachable, RBAC not applied
// yet, the pod not visible yet) is retried with exponential backoff, forever and
// without stopping the process: the Lease is written without an owner meanwhile and
// gets it at the first write after the read succeeds. A pod without a controller (a
// bare pod) gives no owner, logged once. After a successful read the pod is read again
// every `refreshMs` (default 60 s): a StatefulSet deleted with `--cascade=orphan` and
// created again adopts the pod under a new uid, and a Lease that kept naming the old
// uid would be deleted by the garbage collector (its only owner is gone).
import { backoffDelayMs } from "@berth/proto";
import type { CoreV1Api, V1OwnerReference, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { LogThrottle } from "./log-throttle.js";
import { errorMessage, requestOptions } from "./request.js";

/** What a Lease writer asks for the owner to put on its Lease. */
export interface LeaseOwner {
  /** The owner to add, or undefined (none, or not known yet). */
  readonly reference: V1OwnerReference | undefined;
}

/**
 * The pod's controller reference (the one with `controller: true`), as a plain owner
 * reference: apiVersion, kind, name and uid only. Undefined for a pod without one.
 */
export function controllerOwnerOf(pod: V1Pod): V1OwnerReference | undefined {
  const ref = pod.metadata?.ownerReferences?.find((r) => r.controller === true);
  if (ref === undefined) return undefined;
  return { apiVersion: ref.apiVersion, kind: ref.kind, name: ref.name, uid: ref.uid };
}

/**
 * `references` with `owner` added unless one with its uid is there already. The
 * other owners are kept: the garbage collector deletes the Lease once every owner is
 * gone and drops references to owners that are gone while another remains (an old
 * ReplicaSet of a rolled-out Deployment, a StatefulSet deleted and created again).
 * Undefined only when both are.
 */
export function withOwner(
  references: readonly V1OwnerReference[] | undefined,
  owner: V1OwnerReference | undefined,
): V1OwnerReference[] | undefined {
  if (owner === undefined) return references === undefined ? undefined : [...references];
  const kept = references ?? [];
  if (kept.some((r) => r.uid === owner.uid)) return [...kept];
  return [...kept, owner];
}

/** Options of a {@link PodControllerOwner}. */
export interface PodControllerOwnerOptions {
  readonly api: CoreV1Api;
  readonly namespace: string;
  /** The pod the Lease holder runs in (from the downward API: `$(POD_NAME)`). */
  readonly pod: string;
  readonly logger?: Logger;
  /**
   * Wait before the first retry, doubled after each failure up to `maxRetryMs`
   * ({@link backoffDelayMs}, no jitter: each pod reads only itself); default 500.
   */
  readonly initialRetryMs?: number;
  /** Longest wait between two reads; default 30,000. */
  readonly maxRetryMs?: number;
  /** Timeout of one read; default 10,000. */
  readonly requestTimeoutMs?: number;
  /** Time between two reads after one succeeded; default 60,000. */
  readonly refreshMs?: number;
}

/** Reads a pod until it succeeds and offers the pod's controller as the Lease owner. */
export class PodControllerOwner implements LeaseOwner {
  readonly #o: Required<Omit<PodControllerOwnerOptions, "logger">> & { readonly logger?: Logger };
  readonly #throttle = new LogThrottle();
  readonly #resolved: Promise<void>;
  #resolve: () => void = () => {};
  #reference: V1OwnerReference | undefined;
  #run: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  /** Successful reads so far. */
  #reads = 0;

  constructor(options: PodControllerOwnerOptions) {
    this.#o = {
      initialRetryMs: 500,
      maxRetryMs: 30_000,
      requestTimeoutMs: 10_000,
      refreshMs: 60_000,
      ...options,
    };
    this.#resolved = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  get reference(): V1OwnerReference | undefined {
    return this.#reference;
  }

  /** Failed reads so far. */
  get failures(): number {
    return this.#failures;
  }

  /** Resolves once the pod was read (whether or not it has a controller). */
  whenResolved(): Promise<void> {
    return this.#resolved;
  }

  /** Starts reading the pod: at once, then after each failure with backoff. Idempotent. */
  start(): void {
    if (this.#run !== undefined) return;
    this.#run = new AbortController();
    void this.#attempt(this.#run.signal, 1);
  }

  /** Stops retrying; a read in flight is aborted. Idempotent. */
  stop(): void {
    this.#run?.abort();
    this.#run = undefined;
    clearTimeout(this.#timer);
  }

  /** Reads the pod; on failure tries again after the backoff of retry number `retry` (from 1). */
  async #attempt(signal: AbortSignal, retry: number): Promise<void> {
    const { api, namespace, pod, logger } = this.#o;
    let read: V1Pod;
    try {
      read = await api.readNamespacedPod(
        { namespace, name: pod },
        requestOptions(signal, this.#o.requestTimeoutMs),
      );
    } catch (e: unknown) {
      if (signal.aborted) return;
      this.#failures++;
      const nextRetryMs = backoffDelayMs(retry, {
        initialMs: this.#o.initialRetryMs,
        maxMs: this.#o.maxRetryMs,
        jitter: "none",
      });
      const message = errorMessage(e);
      const d = this.#throttle.failure(message);
      if (d.log) {
        logger?.warn(
          {
            pod: `${namespace}/${pod}`,
            err: message,
            suppressed: d.suppressed,
            retryInMs: nextRetryMs,
          },
          this.#reads === 0
            ? "cannot read this pod to find the Lease owner; the Lease has no owner until it can"
            : "cannot read this pod again to check the Lease owner; keeping the one found",
        );
      }
      this.#timer = setTimeout(() => void this.#attempt(signal, retry + 1), nextRetryMs);
      this.#timer.unref();
      return;
    }
    if (signal.aborted) return;
    const previous = this.#reference;
    const first = this.#reads === 0;
    this.#reads++;
    this.#reference = controllerOwnerOf(read);
    this.#throttle.recovered();
    this.#timer = setTimeout(() => void this.#attempt(signal, 1), this.#o.refreshMs);
    this.#timer.unref();
    if (!first && previous?.uid === this.#reference?.uid) return;
    if (this.#reference === undefined) {
      logger?.warn(
        { pod: `${namespace}/${pod}` },
        "this pod has no controller: its Lease gets no owner and outlives an uninstall",
      );
    } else {
      logger?.info(
        {
          pod: `${namespace}/${pod}`,
          owner: `${this.#reference.kind}/${this.#reference.name}`,
          failures: this.#failures,
        },
        "Lease owner found: the pod's controller",
      );
    }
    this.#resolve();
  }
}
