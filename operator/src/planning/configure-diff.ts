// The CapacityPool → Configure diff, pure: which pool specs an owner must be sent
// because what it last accepted differs. The operator (one CapacityPool per
// reconcile, sent to the shard's owner) and local mode (every manifest at once, sent
// through a Router) both decide with configuresNeeded, so "reconcile twice changes
// nothing" holds for both once it holds here.
import type { internal } from "@berth/proto";

/** What an owner last accepted for a pool. */
export interface AcceptedSpec {
  /** {@link specKey} of the spec it accepted. */
  readonly key: string;
  /** The owner that accepted it, when the caller sent it to one (the operator). */
  readonly owner?: string;
  /** The epoch it was sent at, with `owner`. */
  readonly epoch?: number;
}

/** Where a pool is served now: its shard's active owner and epoch. */
export interface Placement {
  readonly owner: string;
  readonly epoch: number;
}

/** Input of {@link configuresNeeded}. */
export interface ConfigureDiffInput {
  /** The specs wanted (from CapacityPool resources or manifests). */
  readonly desired: readonly internal.PoolSpec[];
  /** What was last accepted for a pool, if anything. */
  readonly accepted: (pool: string) => AcceptedSpec | undefined;
  /**
   * Where each pool is served now. Given (the operator sends to the owner itself), a
   * spec is in force only when accepted by that owner at that epoch, and a pool with
   * no placement (no active owner) is never in force. Omitted (local mode, whose
   * Router finds the owner), a spec is in force wherever it was accepted.
   */
  readonly placement?: (pool: string) => Placement | undefined;
}

/** A Configure to send: the spec and its key, to remember once it is accepted. */
export interface PendingConfigure {
  readonly spec: internal.PoolSpec;
  readonly key: string;
}

/** A stable comparison key of a spec (the generation included: a new one is re-sent). */
export function specKey(spec: internal.PoolSpec): string {
  const labels = Object.entries(spec.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([
    spec.capacity,
    labels,
    spec.window ?? null,
    spec.closed,
    spec.generation,
    spec.deleted,
  ]);
}

/**
 * The specs of `desired` that are not in force, in order. Recording each answer's
 * key (and placement) as accepted and asking again answers nothing.
 */
export function configuresNeeded(input: ConfigureDiffInput): PendingConfigure[] {
  const pending: PendingConfigure[] = [];
  for (const spec of input.desired) {
    const key = specKey(spec);
    const accepted = input.accepted(spec.pool);
    let inForce = accepted !== undefined && accepted.key === key;
    if (inForce && input.placement !== undefined) {
      const at = input.placement(spec.pool);
      inForce = at !== undefined && accepted?.owner === at.owner && accepted.epoch === at.epoch;
    }
    if (!inForce) pending.push({ spec, key });
  }
  return pending;
}
