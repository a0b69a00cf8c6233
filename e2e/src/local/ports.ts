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
 * Free ports on 127.0.0.1 for every process, chosen by the OS (`--port 0`). All
 * are held open until all are chosen, so none is handed out twice.
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
