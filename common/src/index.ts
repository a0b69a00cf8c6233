/**
 * @berth/common: process plumbing every Berth process shares — structured logging,
 * the metrics registry, the /metrics, /healthz and /readyz endpoints, host:port
 * parsing. No Berth domain code lives here; it depends on no other Berth package.
 */

export * from "./observability.js";
