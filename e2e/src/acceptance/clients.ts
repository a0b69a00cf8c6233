// Promise-returning wrappers over the real grpc-js clients the acceptance
// scenarios call: the public CapacityService on the gateway and the internal
// GossipService on a worker. Every call has a deadline.

import assert from "node:assert/strict";
import {
  CapacityServiceClient,
  clusterClientOptions,
  GossipServiceClient,
  type ParsedRichStatus,
  parseRichStatus,
} from "@berth/common";
import { type internal, v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";

/** Deadline of a public call unless a scenario says otherwise. */
export const DEFAULT_DEADLINE_MS = 10_000;

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

function unary<Req, Res>(
  client: grpc.Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  deadlineMs: number,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    method.call(
      client,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (error, response) => (error === null ? resolve(response) : reject(error)),
    );
  });
}

/** The public API of a gateway, one method per RPC. */
export class CapacityApi {
  readonly client: CapacityServiceClient;

  constructor(address: string) {
    this.client = new CapacityServiceClient(address, grpc.credentials.createInsecure());
  }

  reserve(
    request: Partial<v1.ReserveRequest>,
    deadlineMs = DEFAULT_DEADLINE_MS,
  ): Promise<v1.ReserveResponse> {
    return unary(
      this.client,
      this.client.reserve,
      v1.ReserveRequest.fromPartial(request),
      deadlineMs,
    );
  }

  release(reservationId: string, deadlineMs = DEFAULT_DEADLINE_MS): Promise<v1.ReleaseResponse> {
    return unary(this.client, this.client.release, { reservationId }, deadlineMs);
  }

  /** GetPool's pool; fails the test when the answer holds none. */
  async getPool(pool: string, deadlineMs = DEFAULT_DEADLINE_MS): Promise<v1.Pool> {
    const r = await unary(this.client, this.client.getPool, { pool }, deadlineMs);
    assert.ok(r.pool !== undefined, `GetPool(${pool}) answered a pool`);
    return r.pool;
  }

  getAvailability(
    request: Partial<v1.GetAvailabilityRequest>,
    deadlineMs = DEFAULT_DEADLINE_MS,
  ): Promise<v1.GetAvailabilityResponse> {
    return unary(
      this.client,
      this.client.getAvailability,
      v1.GetAvailabilityRequest.fromPartial(request),
      deadlineMs,
    );
  }

  close(): void {
    this.client.close();
  }
}

/** A worker's (or gateway's) gossip replica, read through GossipService.Pull. */
export class GossipReader {
  readonly client: GossipServiceClient;

  /** @param clusterId the cluster id the node was started with ("" for none) */
  constructor(address: string, clusterId = "") {
    this.client = new GossipServiceClient(
      address,
      grpc.credentials.createInsecure(),
      clusterClientOptions(clusterId),
    );
  }

  /** Every entry of the replica, following pages. */
  async pullAll(deadlineMs = DEFAULT_DEADLINE_MS): Promise<internal.PoolCounters[]> {
    const entries: internal.PoolCounters[] = [];
    let pageToken = "";
    do {
      const page = await unary(
        this.client,
        this.client.pull,
        { from: "acceptance-test", pageToken },
        deadlineMs,
      );
      entries.push(...page.entries);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return entries;
  }

  close(): void {
    this.client.close();
  }
}

/**
 * The status a call failed with; fails the test when it succeeded.
 *
 * @param call the pending call
 * @param what the request, for the failure message
 */
export async function failureOf(call: Promise<unknown>, what: string): Promise<ParsedRichStatus> {
  let answer: unknown;
  try {
    answer = await call;
  } catch (e: unknown) {
    return parseRichStatus(e);
  }
  return assert.fail(`${what}: expected a failure, got ${JSON.stringify(answer)}`);
}

/** The name of a gRPC status code, for messages. */
export function codeName(code: number): string {
  return grpc.status[code] ?? String(code);
}

/** Polls `check` every `intervalMs` until it returns true; fails the test after `timeoutMs`. */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
