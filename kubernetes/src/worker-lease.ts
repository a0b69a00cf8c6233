// A worker's membership Lease (coordination.k8s.io/v1): created if missing, renewed
// every interval with a new renewTime, carrying the worker's gRPC address. The
// operator judges liveness by the renewals it *observes* on its own monotonic clock
// (operator/src/controller/membership.ts), never by comparing renewTime with its
// clock, so what matters here is that every renewal changes renewTime.
//
// On stop({ release: true }) the Lease is deleted (not cleared): the operator's watch
// sees the deletion at once and forgets the member, where a cleared Lease would be
// one more object whose meaning everyone must agree on. A worker that stops without
// releasing (or crashes) leaves its Lease to expire by observation, and to be deleted
// by the garbage collector with its owner (see lease-owner.ts) on uninstall.
import {
  ApiException,
  type CoordinationV1Api,
  type V1Lease,
  V1MicroTime,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { type LeaseOwner, withOwner } from "./lease-owner.js";
import { LogThrottle } from "./log-throttle.js";
import { errorMessage, requestOptions } from "./request.js";

/** Annotation of a worker Lease holding `host:port` of the worker's internal gRPC server. */
export const WORKER_ADDRESS_ANNOTATION = "berth.dev/address";

/** Labels of every worker Lease (the operator selects them with {@link WORKER_LEASE_SELECTOR}). */
export const WORKER_LEASE_LABELS = {
  "app.kubernetes.io/part-of": "berth",
  "app.kubernetes.io/component": "worker",
} as const;

/** {@link WORKER_LEASE_LABELS} as a label selector. */
export const WORKER_LEASE_SELECTOR = Object.entries(WORKER_LEASE_LABELS)
  .map(([k, v]) => `${k}=${v}`)
  .join(",");

/** Options of a {@link WorkerLease}. */
export interface WorkerLeaseOptions {
  readonly api: CoordinationV1Api;
  readonly namespace: string;
  /** Lease name = member id = the worker's pod name. */
  readonly name: string;
  /** `host:port` of the worker's internal gRPC server. */
  readonly address: string;
  /** spec.leaseDurationSeconds, in ms (rounded up to seconds); default 6000. */
  readonly leaseDurationMs?: number;
  /** How often to renew; default 1000; must be shorter than the duration. */
  readonly renewIntervalMs?: number;
  readonly logger?: Logger;
  /**
   * Added to the Lease's ownerReferences (created or adopted) as soon as it is known:
   * the controller of the worker's pod, so deleting the StatefulSet deletes the Lease.
   */
  readonly owner?: LeaseOwner;
  /** Monotonic milliseconds (default performance.now). */
  readonly now?: () => number;
}

/** Counters of a {@link WorkerLease}, for metrics and tests. */
export interface WorkerLeaseStats {
  /** Successful writes (the creation included). */
  renewals: number;
  /** Rounds that failed (API server unreachable, forbidden, …). */
  failures: number;
  /** The last failure, for people; kept after recovery. */
  lastError: string | undefined;
}

/** Conflicts and disappearances are retried at once, this many writes per round. */
const ATTEMPTS_PER_ROUND = 3;

/** Keeps one worker's Lease renewed until stopped. */
export class WorkerLease {
  readonly #o: Required<Omit<WorkerLeaseOptions, "logger" | "owner">> & {
    readonly logger?: Logger;
    readonly owner?: LeaseOwner;
  };
  readonly #throttle = new LogThrottle();
  readonly #stats: WorkerLeaseStats = { renewals: 0, failures: 0, lastError: undefined };
  /** The Lease as last written or read (undefined: read it first). */
  #lease: V1Lease | undefined;
  #lastRenewTime = 0;
  #lastRenewedAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #run: AbortController | undefined;
  #round: Promise<void> = Promise.resolve();

  constructor(options: WorkerLeaseOptions) {
    const leaseDurationMs = options.leaseDurationMs ?? 6_000;
    const renewIntervalMs = options.renewIntervalMs ?? 1_000;
    if (!(renewIntervalMs > 0 && renewIntervalMs < leaseDurationMs)) {
      throw new RangeError("renewIntervalMs must be positive and shorter than leaseDurationMs");
    }
    this.#o = {
      now: () => performance.now(),
      ...options,
      leaseDurationMs,
      renewIntervalMs,
    };
  }

  /**
   * Monotonic time (per `now`) at which the last successful renewal was sent: the
   * Lease was renewed no earlier than this. Undefined before the first one.
   */
  get lastRenewedAt(): number | undefined {
    return this.#lastRenewedAt;
  }

  /** Starts renewing: at once, then every renew interval. Idempotent. */
  start(): void {
    if (this.#run !== undefined) return;
    this.#run = new AbortController();
    this.#schedule(0, this.#run.signal);
  }

  /**
   * Stops renewing; a request in flight is aborted. With `release`, then deletes the
   * Lease (only the incarnation this worker wrote, by uid): best effort — a failure
   * is logged and the Lease expires instead. Idempotent.
   */
  async stop(options: { readonly release?: boolean } = {}): Promise<void> {
    this.#run?.abort();
    this.#run = undefined;
    clearTimeout(this.#timer);
    await this.#round;
    if (options.release === true) await this.#release();
  }

  /** Counters: renewals, failed rounds and the last error. */
  stats(): WorkerLeaseStats {
    return { ...this.#stats };
  }

  #schedule(delayMs: number, signal: AbortSignal): void {
    if (signal.aborted) return;
    this.#timer = setTimeout(() => {
      this.#round = this.#renew(signal).finally(() =>
        this.#schedule(this.#o.renewIntervalMs, signal),
      );
    }, delayMs);
  }

  async #renew(signal: AbortSignal): Promise<void> {
    const sentAt = this.#o.now();
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          this.#lease = await this.#write(signal);
          break;
        } catch (e: unknown) {
          // Someone else wrote or deleted it meanwhile: read it again and retry now.
          const stale = e instanceof ApiException && (e.code === 404 || e.code === 409);
          if (!stale || attempt === ATTEMPTS_PER_ROUND || signal.aborted) throw e;
          this.#lease = undefined;
        }
      }
    } catch (e: unknown) {
      if (signal.aborted) return;
      this.#failed(e);
      return;
    }
    this.#stats.renewals++;
    this.#lastRenewedAt = sentAt;
    const failures = this.#throttle.recovered();
    if (failures > 0 || this.#stats.renewals === 1) {
      this.#o.logger?.info(
        { lease: this.#key(), address: this.#o.address, failures },
        failures > 0 ? "worker Lease renewed again" : "worker Lease held",
      );
    }
  }

  /** One write: create the Lease if there is none, else renew it (conditional on its resourceVersion). */
  async #write(signal: AbortSignal): Promise<V1Lease> {
    const { api, namespace, name } = this.#o;
    const options = requestOptions(signal, this.#o.leaseDurationMs);
    if (this.#lease === undefined) {
      try {
        this.#lease = await api.readNamespacedLease({ namespace, name }, options);
      } catch (e: unknown) {
        if (!(e instanceof ApiException && e.code === 404)) throw e;
        return api.createNamespacedLease({ namespace, body: this.#body(undefined) }, options);
      }
    }
    return api.replaceNamespacedLease({ namespace, name, body: this.#body(this.#lease) }, options);
  }

  /** The Lease as this worker holds it: previous fields kept, ours set, a new renewTime. */
  #body(previous: V1Lease | undefined): V1Lease {
    const { namespace, name, address, leaseDurationMs } = this.#o;
    const meta = previous?.metadata ?? { name, namespace };
    const renewTime = this.#nextRenewTime();
    const mine = previous?.spec?.holderIdentity === name;
    const ownerReferences = withOwner(meta.ownerReferences, this.#o.owner?.reference);
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        ...meta,
        labels: { ...meta.labels, ...WORKER_LEASE_LABELS },
        annotations: { ...meta.annotations, [WORKER_ADDRESS_ANNOTATION]: address },
        ...(ownerReferences === undefined ? {} : { ownerReferences }),
      },
      spec: {
        ...previous?.spec,
        holderIdentity: name,
        leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
        renewTime,
        acquireTime: mine && previous?.spec?.acquireTime ? previous.spec.acquireTime : renewTime,
      },
    };
  }

  /** Now, but never equal to (or before) the last renewTime written: each renewal is visible. */
  #nextRenewTime(): V1MicroTime {
    const ms = Math.max(Date.now(), this.#lastRenewTime + 1);
    this.#lastRenewTime = ms;
    return new V1MicroTime(ms);
  }

  #failed(e: unknown): void {
    const message = errorMessage(e);
    this.#stats.failures++;
    this.#stats.lastError = message;
    const d = this.#throttle.failure(message);
    if (d.log) {
      this.#o.logger?.warn(
        { lease: this.#key(), err: message, suppressed: d.suppressed },
        "worker Lease renewal failed; retrying",
      );
    }
  }

  async #release(): Promise<void> {
    const { api, namespace, name } = this.#o;
    const uid = this.#lease?.metadata?.uid;
    try {
      await api.deleteNamespacedLease(
        { namespace, name, ...(uid === undefined ? {} : { body: { preconditions: { uid } } }) },
        requestOptions(AbortSignal.timeout(this.#o.leaseDurationMs), this.#o.leaseDurationMs),
      );
      this.#o.logger?.info({ lease: this.#key() }, "worker Lease released");
    } catch (e: unknown) {
      // 404: already gone; 409: the uid differs, a newer incarnation holds it.
      if (e instanceof ApiException && (e.code === 404 || e.code === 409)) return;
      this.#o.logger?.warn(
        { lease: this.#key(), err: errorMessage(e) },
        "could not release the worker Lease; it will expire",
      );
    } finally {
      this.#lease = undefined;
    }
  }

  #key(): string {
    return `${this.#o.namespace}/${this.#o.name}`;
  }
}
