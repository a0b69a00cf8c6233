// grpc-js handlers of berth.internal.v1.GossipService over a Replica.

import { type internal, timestampMs, timestampOf } from "@berth/proto";
import { status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { GossipServiceServer } from "../grpc-services.js";
import { BUCKET_COUNT } from "./digest.js";
import { encodedSizeBound, MAX_GOSSIP_MESSAGE_BYTES } from "./message-size.js";
import { decodePageToken, encodePageToken, InvalidPageTokenError } from "./page-token.js";
import type { Replica } from "./replica.js";

/** Told about every Push a node receives (for metrics). */
export interface GossipObserver {
  /** A Push from node `from` carried `entries` entries, `accepted` of them newer than ours. */
  pushReceived(from: string, entries: number, accepted: number): void;
  /** A Digest from node `from` listed `buckets` buckets, `differing` of them unlike ours. */
  digestReceived?(from: string, buckets: number, differing: number): void;
}

/** Options of {@link gossipServiceHandlers}. */
export interface GossipServiceOptions {
  /** Told about received pushes; the Gossiper passes its metrics here. */
  readonly observer?: GossipObserver;
  /** Largest Pull page, in encoded bytes. Default {@link MAX_GOSSIP_MESSAGE_BYTES}. */
  readonly maxMessageBytes?: number;
}

/**
 * The GossipService of a node holding `replica`: Push merges entries (higher
 * version wins, counted as the sender's for digests) and answers how many were newer;
 * Digest answers the buckets where the sender's digest differs from our copy of its
 * entries (and confirms the rest); Pull answers the replica (only the buckets whose
 * digest differs, when the caller sent its digests) in
 * pool-id order, one size-bounded page at a time (PullRequest.page_token),
 * each entry's `confirmedAt` set to when this node last had it confirmed, so the
 * puller does not mistake a relayed entry for a fresh one.
 */
export function gossipServiceHandlers(
  replica: Replica,
  logger: Logger,
  options: GossipServiceOptions = {},
): GossipServiceServer {
  const maxBytes = options.maxMessageBytes ?? MAX_GOSSIP_MESSAGE_BYTES;
  /** One size-bounded page of the replica after `token`, only `buckets` when given. */
  const pageOf = (
    token: string,
    buckets: ReadonlySet<number> | undefined,
  ): { entries: internal.PoolCounters[]; next: string } | { code: status; details: string } => {
    let after: string | undefined;
    try {
      after = token === "" ? undefined : decodePageToken(token);
    } catch (e: unknown) {
      if (e instanceof InvalidPageTokenError) {
        return { code: status.INVALID_ARGUMENT, details: `page_token: ${e.message}` };
      }
      logger.error({ err: e }, "gossip pull failed");
      return { code: status.INTERNAL, details: "gossip pull failed" };
    }
    const entries: internal.PoolCounters[] = [];
    let size = 0;
    let next = "";
    for (const entry of replica.entries(after)) {
      if (buckets !== undefined && !buckets.has(replica.bucketOfEntry(entry))) continue;
      const counters = withConfirmedAt(entry.counters, entry.confirmedAtMs);
      const n = encodedSizeBound(counters);
      if (entries.length > 0 && size + n > maxBytes) {
        next = encodePageToken((entries.at(-1) as internal.PoolCounters).pool);
        break;
      }
      entries.push(counters);
      size += n;
    }
    return { entries, next };
  };
  return {
    push(call, callback) {
      const { from, entries } = call.request;
      // grpc-js decoded the entries for this call: the replica may write shared values in.
      const accepted = replica.apply(
        entries,
        from === "" ? { decoded: true } : { from, decoded: true },
      );
      options.observer?.pushReceived(from, entries.length, accepted);
      logger.trace({ from, entries: entries.length, accepted }, "gossip push received");
      callback(null, { accepted });
    },

    digest(call, callback) {
      const { from, digests, bucketCount } = call.request;
      if (bucketCount !== BUCKET_COUNT || from === "") {
        callback({
          code: status.INVALID_ARGUMENT,
          details:
            from === ""
              ? "from must name the sending node"
              : `bucket_count must be ${BUCKET_COUNT}, got ${bucketCount}`,
        });
        return;
      }
      const differingBuckets = replica.compareDigests(from, digests);
      options.observer?.digestReceived?.(from, digests.length, differingBuckets.length);
      logger.trace(
        { from, buckets: digests.length, differing: differingBuckets.length },
        "gossip digest received",
      );
      callback(null, { differingBuckets });
    },

    pushBuckets(call, callback) {
      const { from, entries, completeBuckets, bucketCount } = call.request;
      if (bucketCount !== BUCKET_COUNT || from === "") {
        callback({
          code: status.INVALID_ARGUMENT,
          details:
            from === ""
              ? "from must name the sending node"
              : `bucket_count must be ${BUCKET_COUNT}, got ${bucketCount}`,
        });
        return;
      }
      const accepted = replica.apply(entries, { from, decoded: true });
      replica.completeBuckets(from, completeBuckets, entries);
      options.observer?.pushReceived(from, entries.length, accepted);
      callback(null, { accepted });
    },

    pull(call, callback) {
      const page = pageOf(call.request.pageToken, undefined);
      if ("code" in page) {
        callback(page);
        return;
      }
      logger.debug(
        { from: call.request.from, entries: page.entries.length, more: page.next !== "" },
        "gossip pull served",
      );
      callback(null, { entries: page.entries, nextPageToken: page.next });
    },

    pullChanged(call, callback) {
      const { digests, bucketCount, pageToken, from } = call.request;
      if (bucketCount !== BUCKET_COUNT) {
        callback({
          code: status.INVALID_ARGUMENT,
          details: `bucket_count must be ${BUCKET_COUNT}, got ${bucketCount}`,
        });
        return;
      }
      const compared = replica.compareBucketDigests(digests);
      const page = pageOf(pageToken, compared.differing);
      if ("code" in page) {
        callback(page);
        return;
      }
      const matching =
        pageToken !== ""
          ? []
          : compared.matching.map((m) => ({
              bucket: m.bucket,
              confirmedAt: timestampOf(m.confirmedAtMs),
            }));
      logger.debug(
        { from, entries: page.entries.length, matching: matching.length, more: page.next !== "" },
        "gossip pull served",
      );
      callback(null, { entries: page.entries, nextPageToken: page.next, matching });
    },
  };
}

function withConfirmedAt(c: internal.PoolCounters, confirmedAtMs: number): internal.PoolCounters {
  if (timestampMs(c.confirmedAt) === confirmedAtMs) return c;
  return { ...c, confirmedAt: timestampOf(confirmedAtMs) };
}
