/**
 * One worker and one gateway on 127.0.0.1, local mode (SQLite journal, ShardMap file), as
 * the image tests and the start-to-ready benchmark run them — in containers of the image or
 * on the host. The data directory holds the ShardMap and the journal; in a container it is
 * the volume mounted at /var/lib/berth.
 */

import { chown, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { writeShardMapFile } from "@berth/common";
import { allocateFreePorts, type ClusterPorts } from "@berth/local";
import { planShardMapAtStart } from "@berth/operator";

/** The volume's mount point in the image (the Dockerfile creates it, owned by 10001). */
export const DATA_MOUNT = "/var/lib/berth";

/** Ports and command lines of one worker + one gateway. */
export interface SingleNode {
  readonly ports: ClusterPorts;
  readonly workerHttp: string;
  readonly gatewayHttp: string;
  /** `berth-worker` flags, with the data directory as `dataDir`. */
  workerArgs(dataDir: string): string[];
  /** `berth-gateway` flags, with the data directory as `dataDir`. */
  gatewayArgs(dataDir: string): string[];
}

/**
 * Chooses free ports and writes the ShardMap (16 shards, all on worker-0) into `hostDir`,
 * owned by `owner` (the image's uid) so a container can write its journal beside it.
 */
export async function prepareSingleNode(
  hostDir: string,
  owner?: { uid: number; gid: number },
): Promise<SingleNode> {
  const ports = await allocateFreePorts(1);
  const worker = ports.workers[0] as ClusterPorts["workers"][number];
  const at = (port: number) => `127.0.0.1:${port}`;
  await mkdir(hostDir, { recursive: true });
  const map = planShardMapAtStart({
    members: [{ id: "worker-0", address: at(worker.grpc) }],
    shardCount: 16,
  });
  await writeShardMapFile(join(hostDir, "shard-map.json"), map);
  if (owner !== undefined) {
    await chown(hostDir, owner.uid, owner.gid);
    await chown(join(hostDir, "shard-map.json"), owner.uid, owner.gid);
  }
  return {
    ports,
    workerHttp: at(worker.http),
    gatewayHttp: at(ports.gateway.http),
    workerArgs: (dataDir) => [
      "--id",
      "worker-0",
      "--grpc",
      at(worker.grpc),
      "--http",
      at(worker.http),
      "--journal",
      `sqlite://${dataDir}/journal.db`,
      "--shard-map-file",
      `${dataDir}/shard-map.json`,
      "--gossip-peer",
      at(ports.gateway.gossip),
    ],
    gatewayArgs: (dataDir) => [
      "--grpc",
      at(ports.gateway.grpc),
      "--gossip",
      at(ports.gateway.gossip),
      "--http",
      at(ports.gateway.http),
      "--shard-map-file",
      `${dataDir}/shard-map.json`,
      "--node-id",
      "gateway-0",
    ],
  };
}

/** Thrown when a process's /readyz did not answer 200 before the deadline. */
export class NotReadyError extends Error {
  override readonly name = "NotReadyError";
  constructor(
    readonly url: string,
    readonly lastAnswer: string,
  ) {
    super(`${url} did not answer 200 in time (last: ${lastAnswer})`);
  }
}

/**
 * Polls `http://<address>/readyz` every 10 ms until it answers 200; resolves with the
 * milliseconds since `since` (a performance.now() value). `alive` aborts the wait early
 * when it returns a reason (the process exited).
 */
export async function waitReady(
  address: string,
  options: { since: number; timeoutMs: number; alive?: () => string | undefined },
): Promise<number> {
  const url = `http://${address}/readyz`;
  const deadline = Date.now() + options.timeoutMs;
  let last = "no answer";
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return performance.now() - options.since;
      last = `HTTP ${res.status}`;
    } catch (e: unknown) {
      last =
        e instanceof Error ? ((e.cause as Error | undefined)?.message ?? e.message) : String(e);
    }
    const dead = options.alive?.();
    if (dead !== undefined) throw new NotReadyError(url, `${last}; ${dead}`);
    if (Date.now() > deadline) throw new NotReadyError(url, last);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * True when a process failed because a port chosen by {@link prepareSingleNode} was taken
 * by another process between being chosen and being bound (the ports are released before
 * the containers bind them): the caller retries with fresh ports.
 */
export function isAddressInUse(e: unknown): boolean {
  return e instanceof NotReadyError && e.lastAnswer.includes("EADDRINUSE");
}
