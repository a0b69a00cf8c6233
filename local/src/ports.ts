// Where each process of the local cluster listens.
import { createServer, type Server } from "node:net";

/** Ports of one local cluster. */
export interface ClusterPorts {
  readonly gateway: { readonly grpc: number; readonly gossip: number; readonly http: number };
  readonly workers: readonly { readonly grpc: number; readonly http: number }[];
  readonly control: number;
}

/** The gateway's public gRPC port by default; every other default is derived from it. */
export const DEFAULT_GATEWAY_PORT = 50051;

/**
 * The build plan's fixed layout, shifted by `port - 50051`: gateway gRPC `port`,
 * gossip `port+9`, HTTP `9100+off`; worker-i gRPC `port+10+i`, HTTP `9101+off+i`;
 * control `9099+off`. With the default port: 50051, 50060, 9100, 50061+i, 9101+i, 9099.
 *
 * @throws RangeError when a derived port falls outside 1..65535
 */
export function derivePorts(port: number, workers: number): ClusterPorts {
  const off = port - DEFAULT_GATEWAY_PORT;
  const ports: ClusterPorts = {
    gateway: { grpc: port, gossip: port + 9, http: 9100 + off },
    workers: Array.from({ length: workers }, (_, i) => ({
      grpc: port + 10 + i,
      http: 9101 + off + i,
    })),
    control: 9099 + off,
  };
  const all = [
    ports.gateway.grpc,
    ports.gateway.gossip,
    ports.gateway.http,
    ports.control,
    ...ports.workers.flatMap((w) => [w.grpc, w.http]),
  ];
  const bad = all.find((p) => p < 1 || p > 65535);
  if (bad !== undefined) {
    throw new RangeError(
      `--port ${port} with ${workers} workers puts a port at ${bad}, outside 1..65535 (ports derive from --port: gateway HTTP at 9100+(port-50051), workers at port+10+i); choose another --port or --port 0`,
    );
  }
  return ports;
}

/**
 * `--port 0`: port 0 for every process. Each child binds a port the OS chooses and
 * reports it in its address file (supervisor.ts); the control server binds its own.
 */
export function portsToReport(workers: number): ClusterPorts {
  return {
    gateway: { grpc: 0, gossip: 0, http: 0 },
    workers: Array.from({ length: workers }, () => ({ grpc: 0, http: 0 })),
    control: 0,
  };
}

/**
 * Free ports on 127.0.0.1 for every process, chosen by the OS. All are held open until
 * all are chosen, so none is handed out twice; but they are closed before the caller
 * binds them, so another program may take one meanwhile. Local mode no longer uses it
 * (see {@link portsToReport}); the image's single-node harness (e2e/src/image) does, as
 * it writes the ShardMap with the worker's address before its containers start.
 */
export async function allocateFreePorts(workers: number): Promise<ClusterPorts> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < 4 + 2 * workers; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve());
      });
      const address = server.address();
      if (address === null || typeof address === "string") throw new Error("no TCP address");
      ports.push(address.port);
    }
    const at = (i: number) => ports[i] as number;
    return {
      gateway: { grpc: at(0), gossip: at(1), http: at(2) },
      control: at(3),
      workers: Array.from({ length: workers }, (_, i) => ({
        grpc: at(4 + 2 * i),
        http: at(5 + 2 * i),
      })),
    };
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** One port of a cluster and what it is for, e.g. `worker-1 gRPC (--port + 11)`. */
export interface LabelledPort {
  readonly port: number;
  readonly what: string;
}

/**
 * Every port of `ports` with what it is for and how it was derived from `basePort`
 * (0: chosen free). `controlExplicit`: the control port came from --control-port.
 */
export function labelPorts(
  ports: ClusterPorts,
  basePort: number,
  controlExplicit: boolean,
): LabelledPort[] {
  const off = (n: number) => (n === 0 ? "" : ` + ${n}`);
  const how = (derived: string) => (basePort === 0 ? "a free port" : derived);
  return [
    { port: ports.gateway.grpc, what: `gateway gRPC (${how("--port")})` },
    { port: ports.gateway.gossip, what: `gateway gossip (${how("--port + 9")})` },
    { port: ports.gateway.http, what: `gateway HTTP (${how("9100 + (--port - 50051)")})` },
    ...ports.workers.flatMap((w, i) => [
      { port: w.grpc, what: `worker-${i} gRPC (${how(`--port + ${10 + i}`)})` },
      { port: w.http, what: `worker-${i} HTTP (${how(`9101 + (--port - 50051)${off(i)}`)})` },
    ]),
    {
      port: ports.control,
      what: `control endpoint (${controlExplicit ? "--control-port" : how("9099 + (--port - 50051)")})`,
    },
  ];
}

/** Thrown when a port the cluster needs is taken or derived twice; nothing was started. */
export class PortUnavailableError extends Error {
  override readonly name = "PortUnavailableError";
  readonly port: number;
  readonly what: string;
  constructor(port: number, what: string, why: string) {
    super(
      `port ${port}, the ${what}, ${why}: choose another --port (the other ports derive from it), or --port 0 to use free ports`,
    );
    this.port = port;
    this.what = what;
  }
}

/**
 * Checks that every port can be bound on 127.0.0.1 (by binding and closing it) and that
 * none is used twice, before anything starts.
 *
 * @throws PortUnavailableError naming the first port that is not available
 */
export async function checkPortsAvailable(ports: readonly LabelledPort[]): Promise<void> {
  const seen = new Map<number, string>();
  for (const p of ports) {
    if (p.port === 0) continue;
    const other = seen.get(p.port);
    if (other !== undefined) {
      throw new PortUnavailableError(p.port, p.what, `is also derived for the ${other}`);
    }
    seen.set(p.port, p.what);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) => {
        const why =
          e.code === "EADDRINUSE"
            ? "is already in use (another program, perhaps another Berth cluster, listens there)"
            : e.code === "EACCES"
              ? "cannot be used by this user"
              : `cannot be bound (${e.code ?? e.message})`;
        reject(new PortUnavailableError(p.port, p.what, why));
      });
      server.listen(p.port, "127.0.0.1", () => server.close(() => resolve()));
    });
  }
}
