// Worker membership from Leases, judged by the operator's own monotonic clock.
// A worker is live while its Lease keeps changing: each observed renewal (a new
// renewTime) restarts its timer at the moment the operator *saw* it, as client-go's
// leader election does. The worker's renewTime is never compared with the
// operator's wall clock, so clock skew between nodes cannot kill or revive a member.

/** What the operator reads from a worker Lease. */
export interface LeaseObservation {
  /** Lease name = worker id (its pod name). */
  readonly name: string;
  /** The Lease's spec.renewTime as written (compared for change only). */
  readonly renewTime: string | undefined;
  /** spec.leaseDurationSeconds; the member expires this long after the last seen renewal. */
  readonly leaseDurationSeconds: number | undefined;
  /** host:port of the worker's internal gRPC server (an annotation of the Lease). */
  readonly address: string | undefined;
}

/** A member as planning sees it. */
export interface ObservedMember {
  readonly id: string;
  readonly address: string;
  readonly live: boolean;
  /** Milliseconds until it expires (0 when already expired). */
  readonly expiresInMs: number;
  /** Milliseconds since its last renewal was observed. */
  readonly renewedAgoMs: number;
}

interface Entry {
  renewTime: string | undefined;
  address: string | undefined;
  durationMs: number;
  observedAt: number;
}

/** Tracks worker Leases; every answer depends only on what was observed and when. */
export class LeaseMembership {
  private readonly entries = new Map<string, Entry>();

  /**
   * @param now monotonic milliseconds (performance.now in production)
   * @param defaultDurationMs used when a Lease states no duration
   */
  constructor(
    private readonly now: () => number,
    private readonly defaultDurationMs = 10_000,
  ) {}

  /**
   * Records a Lease as seen now. Only a changed renewTime counts as a renewal; the
   * first sighting counts as one (the operator cannot know how old it is, so it
   * gives the worker one full duration, as client-go does).
   *
   * @returns true when membership may have changed (a new member, a renewal after
   *   expiry, a new address)
   */
  observe(lease: LeaseObservation): boolean {
    const now = this.now();
    const durationMs =
      lease.leaseDurationSeconds !== undefined && lease.leaseDurationSeconds > 0
        ? lease.leaseDurationSeconds * 1000
        : this.defaultDurationMs;
    const prev = this.entries.get(lease.name);
    if (prev === undefined) {
      this.entries.set(lease.name, {
        renewTime: lease.renewTime,
        address: lease.address,
        durationMs,
        observedAt: now,
      });
      return true;
    }
    const wasLive = now - prev.observedAt < prev.durationMs;
    const renewed = lease.renewTime !== prev.renewTime;
    const moved = lease.address !== prev.address;
    if (renewed) prev.observedAt = now;
    prev.renewTime = lease.renewTime;
    prev.address = lease.address;
    prev.durationMs = durationMs;
    return moved || (renewed && !wasLive);
  }

  /** Forgets a Lease that was deleted (a worker that left for good). */
  remove(name: string): boolean {
    return this.entries.delete(name);
  }

  /** Every known member, sorted by id; a member without an address is never live. */
  members(): ObservedMember[] {
    const now = this.now();
    return [...this.entries.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, e]) => {
        const left = Math.max(0, e.observedAt + e.durationMs - now);
        return {
          id,
          address: e.address ?? "",
          live: left > 0 && e.address !== undefined,
          expiresInMs: left,
          renewedAgoMs: now - e.observedAt,
        };
      });
  }

  /** Milliseconds until the next live member expires (undefined when none is live). */
  nextExpiryInMs(): number | undefined {
    const live = this.members().filter((m) => m.live);
    return live.length === 0 ? undefined : Math.min(...live.map((m) => m.expiresInMs));
  }
}

/** What {@link planningHoldMs} looks at. */
export interface LiveSetChanges {
  /** Monotonic ms now. */
  readonly now: number;
  /** The operator's --membership-stable-ms. */
  readonly stableMs: number;
  /** When a member last became live (joined or returned), if ever. */
  readonly lastJoinAt: number | undefined;
  /** When a member last stopped being live (expired or left), if ever. */
  readonly lastLossAt: number | undefined;
  /** The members live now. */
  readonly live: readonly Pick<ObservedMember, "renewedAgoMs">[];
}

/**
 * How long planning should hold off after the live set changed (0: plan now).
 *
 * - After a join, the set must be unchanged for `stableMs`: workers starting together
 *   join one by one, and planning each one in would move shards back and forth.
 * - After a loss, the wait is only for a member *in doubt*: live, but not seen to
 *   renew for over `stableMs`. Workers killed together stop renewing together and
 *   expire up to one renewal period apart; when the first expires, the others are in
 *   doubt (their last renewal is about a lease duration old), so planning waits
 *   instead of handing shards to a member about to expire and then freezing the map
 *   for lost quorum. When every live member renewed recently, the dead owner's
 *   shards move at once: a failover does not pay the whole wait.
 *
 * Needs renewal period < stableMs < lease duration − renewal period.
 */
export function planningHoldMs(c: LiveSetChanges): number {
  const left = (since: number | undefined) =>
    since === undefined ? 0 : c.stableMs - (c.now - since);
  const joinHold = left(c.lastJoinAt);
  const inDoubt = c.live.some((m) => m.renewedAgoMs > c.stableMs);
  const lossHold = inDoubt ? left(c.lastLossAt) : 0;
  return Math.max(0, Math.ceil(Math.max(joinHold, lossHold)));
}
