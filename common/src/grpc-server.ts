// The lifecycle every Berth gRPC server shares: bind to an address (port 0 for any free
// port) and say where it listens; stop by letting calls in flight finish for a bounded
// time, then cutting the rest off.
import { type Server, ServerCredentials } from "@grpc/grpc-js";
import { parseHostPort } from "./observability.js";

/**
 * Binds `server` to `address` (`host:port`; port 0 takes a free port) and resolves with
 * the address it listens on, with the port it got (`[host]:port` for an IPv6 host), so
 * a caller that asked for port 0 can say where it is without a second lookup.
 *
 * @throws the bind error (address in use, bad host) as grpc-js reports it
 */
export async function bindGrpcServer(
  server: Server,
  address: string,
  credentials: ServerCredentials = ServerCredentials.createInsecure(),
): Promise<string> {
  const { host } = parseHostPort(address);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, credentials, (err, p) => (err ? reject(err) : resolve(p)));
  });
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * Stops `server`: it takes no new calls, the calls in flight get up to `graceMs` to
 * finish, and whatever is still running then is cancelled. Resolves `true` when every
 * call finished within the grace period, `false` when some were cut off.
 */
export function shutdownGrpcServer(server: Server, graceMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve(false);
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
