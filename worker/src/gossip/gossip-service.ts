// grpc-js handlers of berth.internal.v1.GossipService over a Replica.

import type { internal } from "@berth/proto";
import { status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { encodedSizeBound, MAX_GOSSIP_MESSAGE_BYTES } from "./message-size.js";
import { decodePageToken, encodePageToken, InvalidPageTokenError } from "./page-token.js";
import { type Replica, timestampMs } from "./replica.js";

/** Told about every Push a node receives (for metrics). */
export interface GossipObserver {
  /** A Push from node `from` carried `entries` entries, `accepted` of them newer than ours. */
  pushReceived(from: string, entries: number, accepted: number): void;
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
 * version wins) and answers how many were newer; Pull answers the replica in
 * pool-id order, one size-bounded page at a time (PullRequest.page_token),
 * each entry's `confirmedAt` set to when this node last had it confirmed, so the
 * puller does not mistake a relayed entry for a fresh one.
 */
export function gossipServiceHandlers(
  replica: Replica,
  logger: Logger,
  options: GossipServiceOptions = {},
): internal.GossipServiceServer {
  const maxBytes = options.maxMessageBytes ?? MAX_GOSSIP_MESSAGE_BYTES;
  return {
    push(call, callback) {
      const { from, entries } = call.request;
      const accepted = replica.apply(entries);
      options.observer?.pushReceived(from, entries.length, accepted);
      logger.trace({ from, entries: entries.length, accepted }, "gossip push received");
      callback(null, { accepted });
    },

    pull(call, callback) {
      let after: string | undefined;
      try {
        after = call.request.pageToken === "" ? undefined : decodePageToken(call.request.pageToken);
      } catch (e: unknown) {
        if (e instanceof InvalidPageTokenError) {
          callback({
            code: status.INVALID_ARGUMENT,
            details: `page_token: ${e.message}`,
          });
        } else {
          logger.error({ err: e }, "gossip pull failed");
          callback({ code: status.INTERNAL, details: "gossip pull failed" });
        }
        return;
      }
      const entries: internal.PoolCounters[] = [];
      let size = 0;
      let next = "";
      for (const entry of replica.entries(after)) {
        const counters = withConfirmedAt(entry.counters, entry.confirmedAtMs);
        const n = encodedSizeBound(counters);
        if (entries.length > 0 && size + n > maxBytes) {
          next = encodePageToken((entries.at(-1) as internal.PoolCounters).pool);
          break;
        }
        entries.push(counters);
        size += n;
      }
      logger.debug(
        { from: call.request.from, entries: entries.length, more: next !== "" },
        "gossip pull served",
      );
      callback(null, { entries, nextPageToken: next });
    },
  };
}

function withConfirmedAt(c: internal.PoolCounters, confirmedAtMs: number): internal.PoolCounters {
  if (timestampMs(c.confirmedAt) === confirmedAtMs) return c;
  const seconds = Math.floor(confirmedAtMs / 1000);
  return {
    ...c,
    confirmedAt: { seconds, nanos: Math.round(confirmedAtMs - seconds * 1000) * 1_000_000 },
  };
}
