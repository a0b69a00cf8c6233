// The grpc_server_* metrics and berth_requests_total of every Berth gRPC server
// (worker and gateway), on an injected registry, and the wrapper that records them.

import { isErrorReason } from "@berth/proto";
import {
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { Counter, Histogram, type Registry } from "prom-client";
import { parseRichStatus } from "./rich-status.js";

/** The standard grpc_server_* metrics (names as in go-grpc-prometheus, so dashboards work). */
export interface GrpcServerMetrics {
  readonly handled: Counter<"grpc_service" | "grpc_method" | "grpc_type" | "grpc_code">;
  readonly handling: Histogram<"grpc_service" | "grpc_method" | "grpc_type">;
}

/** Creates grpc_server_handled_total and grpc_server_handling_seconds on `registry`. */
export function createGrpcServerMetrics(registry: Registry): GrpcServerMetrics {
  const registers = [registry];
  return {
    handled: new Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, regardless of success or failure.",
      labelNames: ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
      registers,
    }),
    handling: new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Response latency of RPCs handled by the server, in seconds.",
      labelNames: ["grpc_service", "grpc_method", "grpc_type"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
  };
}

/** berth_requests_total: calls of Berth's own services by method and outcome. */
export type RequestOutcomes = Counter<"method" | "outcome">;

/**
 * Creates berth_requests_total{method, outcome} on `registry`: one count per answered
 * unary call, `outcome` being `ok` or the answer's ErrorInfo reason in lower case
 * (`insufficient_capacity`, `not_owner`, `journal_unavailable`, …), or the gRPC code
 * in lower case when the answer carried no Berth reason (`deadline_exceeded`, …).
 * Bounded: a few methods × the fixed reason list, no pool label.
 */
export function createRequestOutcomes(registry: Registry): RequestOutcomes {
  return new Counter({
    name: "berth_requests_total",
    help: "Answered calls of Berth's services, by method and outcome (ok, or the error reason in lower case: insufficient_capacity, pool_not_found, pool_closed, request_id_reused, not_owner, journal_unavailable, …).",
    labelNames: ["method", "outcome"],
    registers: [registry],
  });
}

/**
 * The `outcome` label of an answer: `ok`, else its Berth ErrorInfo reason, else its
 * gRPC status code name, in lower case.
 */
export function outcomeOf(err: unknown): string {
  if (err === null || err === undefined) return "ok";
  const parsed = parseRichStatus(err);
  if (parsed.reason !== undefined && isErrorReason(parsed.reason)) {
    return parsed.reason.toLowerCase();
  }
  return (status[parsed.code] ?? "unknown").toLowerCase();
}

/**
 * Wraps every unary handler of a service so that each call is counted by status code
 * and timed (and, given `outcomes`, counted by outcome in berth_requests_total).
 * Streaming handlers are left as they are.
 */
export function instrumentService<S extends UntypedServiceImplementation>(
  definition: ServiceDefinition,
  handlers: S,
  metrics: GrpcServerMetrics,
  outcomes?: RequestOutcomes,
): S {
  const out: UntypedServiceImplementation = {};
  for (const [key, handler] of Object.entries(handlers)) {
    const def = definition[key];
    if (def === undefined || def.requestStream || def.responseStream) {
      out[key] = handler;
      continue;
    }
    const [, service = "unknown", method = key] = def.path.split("/");
    const labels = { grpc_service: service, grpc_method: method, grpc_type: "unary" };
    const unary = handler as (
      call: ServerUnaryCall<unknown, unknown>,
      cb: sendUnaryData<unknown>,
    ) => void;
    out[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const end = metrics.handling.startTimer(labels);
      let counted = false;
      unary(call, (err, value, trailer, flags) => {
        if (!counted) {
          counted = true;
          const code = err ? (err.code ?? status.UNKNOWN) : status.OK;
          metrics.handled.inc({ ...labels, grpc_code: status[code] ?? String(code) });
          end();
          // Counting must never keep an answer from its caller.
          try {
            outcomes?.inc({ method, outcome: outcomeOf(err) });
          } catch {
            outcomes?.inc({ method, outcome: "unknown" });
          }
        }
        callback(err, value, trailer, flags);
      });
    };
  }
  return out as S;
}
