/**
 * @berth/common: process plumbing every Berth process shares — structured logging,
 * the metrics registry, the /metrics, /healthz and /readyz endpoints, host:port
 * parsing, and the credentials of internal gRPC servers and clients (plaintext or
 * mutual TLS). No Berth domain code lives here; it depends on no other Berth package.
 */

export * from "./internal-tls.js";
export * from "./observability.js";
