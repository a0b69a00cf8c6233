// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: the
// holder renews the Lease every retry period; a candidate takes it over only once
// it has seen no renewal for a whole lease duration, measured by its own monotonic
// clock from when it *observed* the last change (never by comparing the holder's
// renewTime with its own wall clock). Writes are conditional on resourceVersion,
// so two candidates can never both win one round. A leader that fails to renew
// within the renew deadline (shorter than the duration) stops leading before any
// candidate may start.
import {
  ApiException,
  type CoordinationV1Api,
  type V1Lease,
  type V1LeaseSpec,
  V1MicroTime,
  type V1OwnerReference,
} from "@kubernetes/client-node";
import { type LeaseOwner, withOwner } from "./lease-owner.js";
import { requestOptions } from "./request.js";

/** Options of a {@link LeaderElector}. */
export interface LeaderElectorOptions {
  readonly api: CoordinationV1Api;
  readonly namespace: string;
  /** Name of the Lease all candidates compete for. */
  readonly name: string;
  /** This candidate's identity (its pod name). */
  readonly identity: string;
  /** How long a Lease holds without renewal (default 15 s). */
  readonly leaseDurationMs?: number;
  /** A leader that could not renew for this long steps down (default 10 s; < duration). */
  readonly renewDeadlineMs?: number;
  /** How often to try to acquire or renew (default 2 s). */
  readonly retryPeriodMs?: number;
  readonly onStartedLeading?: () => void;
  readonly onStoppedLeading?: () => void;
  /**
   * Added to the Lease's ownerReferences whenever this candidate writes it (as the
   * leader): the controller of its pod, so deleting the Deployment deletes the Lease.
   * Candidates that do not lead never write it, so they add nothing.
   */
  readonly owner?: LeaseOwner;
  /** Called for failed rounds (API unreachable, conflicts); default: ignore. */
  readonly onError?: (e: unknown) => void;
  /** Monotonic milliseconds (default performance.now). */
  readonly now?: () => number;
}

interface Observed {
  readonly key: string;
  readonly at: number;
}

/** Competes for one Lease until stopped. */
export class LeaderElector {
  private readonly o: Required<Omit<LeaderElectorOptions, "onError" | "owner">> & {
    readonly onError: (e: unknown) => void;
    readonly owner?: LeaseOwner;
  };
  private leading = false;
  private observed: Observed | undefined;
  private timer: NodeJS.Timeout | undefined;
  // Fires when a leader has not renewed within the renew deadline, even while a
  // round is stuck on a request that has not failed yet.
  private deadline: NodeJS.Timeout | undefined;
  private running = false;
  private round: Promise<void> = Promise.resolve();
  /** Aborts the requests of the round in flight when the elector stops. */
  private stopping = new AbortController();

  constructor(options: LeaderElectorOptions) {
    const leaseDurationMs = options.leaseDurationMs ?? 15_000;
    const renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    if (renewDeadlineMs >= leaseDurationMs) {
      throw new RangeError("renewDeadlineMs must be shorter than leaseDurationMs");
    }
    this.o = {
      leaseDurationMs,
      renewDeadlineMs,
      retryPeriodMs: options.retryPeriodMs ?? 2_000,
      onStartedLeading: () => {},
      onStoppedLeading: () => {},
      onError: () => {},
      now: () => performance.now(),
      ...options,
    } as typeof this.o;
  }

  /** True while this candidate holds the Lease (by its own last successful renewal). */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Starts competing; rounds run every retry period until {@link stop}. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = new AbortController();
    this.schedule(0);
  }

  /**
   * Stops competing. A leader that stops gracefully releases the Lease (empty holder)
   * so another candidate takes over at once instead of after a lease duration.
   */
  async stop(options: { readonly release?: boolean } = {}): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    // A round waiting on an API server that does not answer must not hold the stop.
    this.stopping.abort();
    await this.round;
    if (this.leading && (options.release ?? true)) {
      const bounded = requestOptions(new AbortController().signal, this.o.renewDeadlineMs);
      try {
        const lease = await this.o.api.readNamespacedLease(
          { namespace: this.o.namespace, name: this.o.name },
          bounded,
        );
        if (lease.spec?.holderIdentity === this.o.identity) {
          await this.o.api.replaceNamespacedLease(
            {
              namespace: this.o.namespace,
              name: this.o.name,
              body: {
                ...lease,
                spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1 },
              },
            },
            bounded,
          );
        }
      } catch (e: unknown) {
        this.o.onError(e);
      }
    }
    this.stepDown();
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.round = this.tryAcquireOrRenew()
        .catch((e: unknown) => this.o.onError(e))
        .finally(() => this.schedule(this.o.retryPeriodMs));
    }, delayMs);
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { api, namespace, name, identity } = this.o;
    const now = this.o.now();
    // No request of a round outlives the renew deadline: a renewal that late could not
    // keep the leadership anyway, and the next round starts fresh.
    const options = requestOptions(this.stopping.signal, this.o.renewDeadlineMs);
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ namespace, name }, options);
    } catch (e: unknown) {
      if (!(e instanceof ApiException) || e.code !== 404) throw e;
      await api.createNamespacedLease(
        {
          namespace,
          body: {
            metadata: { name, namespace, ...this.ownerReferences(undefined) },
            spec: this.spec(undefined),
          },
        },
        options,
      );
      this.renewed(now);
      return;
    }
    const holder = lease.spec?.holderIdentity ?? "";
    const key = `${holder}|${lease.metadata?.resourceVersion ?? ""}`;
    if (this.observed?.key !== key) this.observed = { key, at: now };
    if (holder !== "" && holder !== identity) {
      const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000 || this.o.leaseDurationMs;
      if (now - this.observed.at < durationMs) {
        this.stepDown();
        return;
      }
    }
    await api.replaceNamespacedLease(
      {
        namespace,
        name,
        body: {
          ...lease,
          metadata: { ...lease.metadata, ...this.ownerReferences(lease) },
          spec: this.spec(lease),
        },
      },
      options,
    );
    this.renewed(now);
  }

  private ownerReferences(lease: V1Lease | undefined): { ownerReferences?: V1OwnerReference[] } {
    const references = withOwner(lease?.metadata?.ownerReferences, this.o.owner?.reference);
    return references === undefined ? {} : { ownerReferences: references };
  }

  private spec(lease: V1Lease | undefined): V1LeaseSpec {
    const mine = lease?.spec?.holderIdentity === this.o.identity;
    const transitions = lease?.spec?.leaseTransitions ?? 0;
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      renewTime: new V1MicroTime(),
      acquireTime: mine && lease?.spec?.acquireTime ? lease.spec.acquireTime : new V1MicroTime(),
      leaseTransitions: lease === undefined ? 0 : mine ? transitions : transitions + 1,
    };
  }

  private renewed(at: number): void {
    // Counted from before the write was sent, so never later than the renewal the
    // other candidates observed.
    const left = this.o.renewDeadlineMs - (this.o.now() - at);
    if (left <= 0) {
      // Too late to count: leading on it would end at once, and every controller would
      // start and stop for nothing. The next round starts fresh.
      this.stepDown();
      return;
    }
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.stepDown(), Math.max(0, left));
    this.deadline.unref();
    if (!this.leading && this.running) {
      this.leading = true;
      this.o.onStartedLeading();
    }
  }

  private stepDown(): void {
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    if (!this.leading) return;
    this.leading = false;
    this.o.onStoppedLeading();
  }
}
