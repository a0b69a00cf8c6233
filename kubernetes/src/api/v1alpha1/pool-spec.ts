// A CapacityPool resource as the worker's configure command (internal.PoolSpec):
// the one conversion both the operator and local mode's manifest files use.
import { internal, parseRfc3339 } from "@berth/proto";
import type { CapacityPool } from "./capacity-pool.js";

/** The pool id of a CapacityPool: `<namespace>/<name>` (namespace `default` when unset). */
export function poolIdOf(pool: Pick<CapacityPool, "metadata">): string {
  return `${pool.metadata.namespace ?? "default"}/${pool.metadata.name}`;
}

/**
 * The configure command for a CapacityPool that passed validation (its window's
 * bounds parse): capacity, labels, window, closed and the generation it came from.
 *
 * @throws RangeError when the window does not parse (the pool was not validated)
 */
export function poolSpecOf(pool: CapacityPool): internal.PoolSpec {
  const window = pool.spec.window;
  const at = (field: "start" | "end", text: string) => {
    const t = parseRfc3339(text);
    if (t === undefined) throw new RangeError(`spec.window.${field} is not RFC 3339: ${text}`);
    return t;
  };
  return internal.PoolSpec.fromPartial({
    pool: poolIdOf(pool),
    capacity: pool.spec.capacity,
    labels: { ...pool.metadata.labels },
    window:
      window === undefined
        ? undefined
        : { start: at("start", window.start), end: at("end", window.end) },
    closed: pool.spec.closed ?? false,
    generation: pool.metadata.generation ?? 0,
  });
}
