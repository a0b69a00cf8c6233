/**
 * The grpc-js side of cluster ids (see @berth/proto's cluster-id): a client interceptor
 * that sends this node's id with every call, and a server interceptor that refuses an
 * internal call from another cluster with PERMISSION_DENIED, reason CLUSTER_MISMATCH.
 */

import { CLUSTER_ID_HEADER, INTERNAL_PATH_PREFIX } from "@berth/proto";
import {
  InterceptingCall,
  type Interceptor,
  type Metadata,
  ResponderBuilder,
  ServerInterceptingCall,
  type ServerInterceptor,
  ServerListenerBuilder,
  status,
} from "@grpc/grpc-js";
import { richStatus } from "./rich-status.js";

/** A client interceptor that sends `clusterId` with every call (nothing when it is ""). */
export function clusterIdClientInterceptor(clusterId: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        if (clusterId !== "") metadata.set(CLUSTER_ID_HEADER, clusterId);
        next(metadata, listener);
      },
    });
}

/**
 * grpc-js client options (pass as a client's third constructor argument, merged
 * with channel options) that send `clusterId` with every call.
 */
export function clusterClientOptions(clusterId: string): { interceptors: Interceptor[] } {
  return { interceptors: [clusterIdClientInterceptor(clusterId)] };
}

/** A refused internal call, for the server's log. */
export interface ClusterMismatch {
  /** Full method path, e.g. `/berth.internal.v1.GossipService/Pull`. */
  readonly path: string;
  /** The caller's cluster id; "" when it sent none. */
  readonly callerClusterId: string;
  /** The caller's address as grpc-js reports it. */
  readonly peer: string;
}

/** The caller's cluster id in `metadata` ("" when absent or not a string). */
export function callerClusterId(metadata: Metadata): string {
  const value = metadata.get(CLUSTER_ID_HEADER)[0];
  return typeof value === "string" ? value : "";
}

/**
 * A server interceptor that refuses every internal call ({@link INTERNAL_PATH_PREFIX})
 * whose caller's cluster id is not `clusterId`: PERMISSION_DENIED with an ErrorInfo of
 * reason CLUSTER_MISMATCH; the handler never runs. Public, health and reflection calls
 * pass unchecked.
 *
 * @param clusterId this node's cluster id ("" for none)
 * @param onRefused told about each refused call (log it, rate-limited)
 */
export function clusterIdServerInterceptor(
  clusterId: string,
  onRefused: (mismatch: ClusterMismatch) => void,
): ServerInterceptor {
  return (method, call) => {
    if (!method.path.startsWith(INTERNAL_PATH_PREFIX)) return new ServerInterceptingCall(call);
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const caller = callerClusterId(metadata);
        if (caller === clusterId) {
          next(metadata);
          return;
        }
        onRefused({ path: method.path, callerClusterId: caller, peer: call.getPeer() });
        const refusal = richStatus(
          status.PERMISSION_DENIED,
          caller === ""
            ? "this node belongs to a Berth cluster with an id, and the call carried none: internal calls are taken only from nodes of the same cluster (--cluster-id)"
            : `the call comes from Berth cluster ${JSON.stringify(caller)}, which is not this node's: internal calls are taken only from nodes of the same cluster (--cluster-id)`,
          { reason: "CLUSTER_MISMATCH", metadata: { callerClusterId: caller } },
        );
        call.sendStatus({
          code: refusal.code,
          details: refusal.details,
          metadata: refusal.metadata,
        });
      })
      .build();
    return new ServerInterceptingCall(
      call,
      new ResponderBuilder().withStart((next) => next(listener)).build(),
    );
  };
}
