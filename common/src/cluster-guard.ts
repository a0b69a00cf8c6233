// The server side of cluster ids: refuse internal calls from other clusters, and say
// so in the log without flooding it (a foreign peer retries every second).

import type { ServerInterceptor } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { type ClusterMismatch, clusterIdServerInterceptor } from "./cluster-id.js";

/** Least time between two warnings about calls from the same foreign cluster. */
export const CLUSTER_REFUSAL_WARN_INTERVAL_MS = 30_000;

/**
 * A server interceptor that refuses internal calls of other clusters (see
 * clusterIdServerInterceptor) and logs a warning per foreign cluster id at most every
 * `intervalMs`, counting the refusals in between.
 *
 * @param clusterId this node's cluster id ("" for none)
 * @param log where the warnings go
 * @param now clock for rate limiting (ms)
 */
export function clusterGuard(
  clusterId: string,
  log: Logger,
  intervalMs = CLUSTER_REFUSAL_WARN_INTERVAL_MS,
  now: () => number = Date.now,
): ServerInterceptor {
  const last = new Map<string, { atMs: number; suppressed: number }>();
  return clusterIdServerInterceptor(clusterId, (m: ClusterMismatch) => {
    const seen = last.get(m.callerClusterId);
    const t = now();
    if (seen !== undefined && t - seen.atMs < intervalMs) {
      seen.suppressed++;
      return;
    }
    if (last.size > 100) last.clear();
    last.set(m.callerClusterId, { atMs: t, suppressed: 0 });
    log.warn(
      {
        event: "internal_call.refused",
        clusterId,
        callerClusterId: m.callerClusterId,
        peer: m.peer,
        method: m.path,
        suppressed: seen?.suppressed ?? 0,
      },
      "refused an internal call from another cluster",
    );
  });
}
