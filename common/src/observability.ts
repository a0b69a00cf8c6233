// Logging, metrics and health endpoints shared by every Berth process (worker,
// gateway, operator): one home, so each process logs and answers probes alike.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type Logger, pino } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";

/** Creates the process logger: JSON lines on stdout, one event per line. */
export function createLogger(component: string, fields: Record<string, unknown> = {}): Logger {
  return pino({
    level: process.env.BERTH_LOG_LEVEL ?? "info",
    base: { component, pid: process.pid, ...fields },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** Creates a metrics registry with Node's default process metrics, labelled by component. */
export function createRegistry(component: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** The answer of a readiness probe: ready, or not ready and why. */
export type Readiness =
  | { readonly ready: true }
  | { readonly ready: false; readonly reason: string };

export interface ObservabilityServer {
  /** host:port the server listens on. */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * Serves `/metrics` (Prometheus text format), `/healthz` (liveness: the event loop
 * answers) and `/readyz` (readiness, with the reason when not ready).
 */
export async function startObservabilityServer(options: {
  readonly listen: string;
  readonly registry: Registry;
  readonly readiness: () => Readiness;
  readonly logger: Logger;
}): Promise<ObservabilityServer> {
  const { host, port } = parseHostPort(options.listen);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics") {
      options.registry.metrics().then(
        (body) => {
          res.writeHead(200, { "content-type": options.registry.contentType });
          res.end(body);
        },
        (e: unknown) => {
          options.logger.error({ err: e }, "metrics collection failed");
          res.writeHead(500).end();
        },
      );
      return;
    }
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}\n');
      return;
    }
    if (path === "/readyz") {
      const r = options.readiness();
      res
        .writeHead(r.ready ? 200 : 503, { "content-type": "application/json" })
        .end(`${JSON.stringify(r.ready ? { ready: true } : { ready: false, reason: r.reason })}\n`);
      return;
    }
    res
      .writeHead(404, { "content-type": "text/plain" })
      .end("not found: try /metrics, /healthz, /readyz\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return {
    address: `${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Thrown when a listen or peer address is not of the form host:port. */
export class InvalidAddressError extends Error {
  override readonly name = "InvalidAddressError";
  constructor(readonly address: string) {
    super(`invalid address "${address}": expected host:port with port 0-65535`);
  }
}

/** Splits "host:port" (IPv6 in brackets) into its parts. */
export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:[\]]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m?.[1] || port > 65535) throw new InvalidAddressError(address);
  return { host: m[1].replace(/^\[|\]$/g, ""), port };
}
