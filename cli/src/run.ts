// The `berth` CLI: parse, call the gateway's public CapacityService, print.

import { randomUUID } from "node:crypto";
import { CapacityServiceClient, parseRichStatus, UsageError } from "@berth/common";
import type { v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { type CliCommand, parseCliArgs, usage } from "./args.js";
import {
  availabilityFooter,
  availabilityJson,
  availabilityTable,
  type CallFailure,
  failureText,
  poolJson,
  poolTable,
  table,
} from "./format.js";

/** Where the CLI writes and what it reads from its environment. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Request ids for reserve without --request-id. */
  readonly newRequestId?: () => string;
}

/** Exit code of a successful run. */
export const EXIT_OK = 0;
/** Exit code when the call failed (the gRPC status is printed). */
export const EXIT_RPC_ERROR = 1;
/** Exit code of a malformed command line. */
export const EXIT_USAGE = 2;

/**
 * Runs the CLI.
 *
 * @returns the process exit code: 0, 1 (RPC error) or 2 (usage error)
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let cmd: CliCommand;
  try {
    cmd = parseCliArgs(argv, io.env);
  } catch (e: unknown) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr(`berth: ${e.message}\n${helpPointer(e.topic)}\n`);
    return EXIT_USAGE;
  }
  if (cmd.command === "help") {
    io.stdout(usage(cmd.topic));
    return EXIT_OK;
  }
  if (cmd.command === "health") return health(cmd, io);
  const client = new CapacityServiceClient(cmd.address, grpc.credentials.createInsecure());
  const deadline = () => deadlineIn(cmd);
  const print = (human: string, json: unknown) =>
    io.stdout(cmd.json ? `${JSON.stringify(json, null, 2)}\n` : `${human}\n`);
  try {
    switch (cmd.command) {
      case "reserve": {
        const requestId = cmd.requestId ?? (io.newRequestId ?? randomUUID)();
        const r = await unary<v1.ReserveRequest, v1.ReserveResponse>(
          client.reserve.bind(client),
          { pool: cmd.pool, units: cmd.units, requestId },
          deadline(),
        );
        print(
          table([
            ["reservation", r.reservationId],
            ["pool", r.pool],
            ["units", String(r.units)],
            ["request id", requestId],
            ["replayed", r.replayed ? "yes (an earlier reserve with this request id)" : "no"],
            ["version", String(r.version)],
          ]),
          { ...r, requestId },
        );
        return EXIT_OK;
      }
      case "release": {
        const r = await unary<v1.ReleaseRequest, v1.ReleaseResponse>(
          client.release.bind(client),
          { reservationId: cmd.reservationId },
          deadline(),
        );
        print(
          table([
            ["reservation", r.reservationId],
            ["pool", r.pool],
            ["units", String(r.units)],
            ["released", r.alreadyReleased ? "already (nothing changed)" : "yes"],
            ["version", String(r.version)],
          ]),
          r,
        );
        return EXIT_OK;
      }
      case "pool": {
        const r = await unary<v1.GetPoolRequest, v1.GetPoolResponse>(
          client.getPool.bind(client),
          { pool: cmd.pool },
          deadline(),
        );
        if (r.pool === undefined) throw new Error("the gateway answered GetPool without a pool");
        print(poolTable(r.pool), poolJson(r.pool));
        return EXIT_OK;
      }
      case "availability": {
        const pools: v1.PoolAvailability[] = [];
        let pageToken = cmd.pageToken;
        let last: v1.GetAvailabilityResponse;
        do {
          last = await unary<v1.GetAvailabilityRequest, v1.GetAvailabilityResponse>(
            client.getAvailability.bind(client),
            {
              labelSelector: cmd.selector,
              window: cmd.window,
              minUnits: cmd.minUnits,
              pageSize: cmd.pageSize,
              pageToken,
              includeClosed: cmd.includeClosed,
            },
            deadline(),
          );
          pools.push(...last.pools);
          pageToken = last.nextPageToken;
        } while (cmd.allPages && pageToken !== "");
        print(
          `${pools.length > 0 ? `${availabilityTable(pools)}\n` : ""}${availabilityFooter(
            pools.length,
            last.maxStaleness,
            last.nextPageToken,
          )}`,
          {
            pools: pools.map(availabilityJson),
            nextPageToken: last.nextPageToken,
            maxStaleness:
              last.maxStaleness === undefined
                ? null
                : `${last.maxStaleness.seconds + last.maxStaleness.nanos / 1e9}s`,
          },
        );
        return EXIT_OK;
      }
    }
  } catch (e: unknown) {
    const f = describeFailure(e);
    if (cmd.json) io.stderr(`${JSON.stringify({ error: f }, null, 2)}\n`);
    else io.stderr(`${failureText(f)}\n`);
    return EXIT_RPC_ERROR;
  } finally {
    client.close();
  }
}

const HealthClient = grpc.makeGenericClientConstructor(healthService, "Health");

/** `berth health`: one grpc.health.v1 Check; 0 when SERVING, else 1. */
async function health(cmd: Extract<CliCommand, { command: "health" }>, io: CliIo): Promise<number> {
  const client = new HealthClient(cmd.address, grpc.credentials.createInsecure());
  const check = client.check as unknown as UnaryMethod<{ service: string }, { status: string }>;
  try {
    const { status } = await unary(check.bind(client), { service: cmd.service }, deadlineIn(cmd));
    io.stdout(
      cmd.json
        ? `${JSON.stringify({ service: cmd.service, status }, null, 2)}\n`
        : `${table([
            ["service", cmd.service === "" ? "(the server)" : cmd.service],
            ["status", status],
          ])}\n`,
    );
    return status === "SERVING" ? EXIT_OK : EXIT_RPC_ERROR;
  } catch (e: unknown) {
    const f = describeFailure(e);
    if (cmd.json) io.stderr(`${JSON.stringify({ error: f }, null, 2)}\n`);
    else io.stderr(`${failureText(f)}\n`);
    return EXIT_RPC_ERROR;
  } finally {
    client.close();
  }
}

function deadlineIn(cmd: { readonly timeoutMs: number }): Date {
  return new Date(Date.now() + cmd.timeoutMs);
}

/** The line after a usage error: where the usage is, not the usage itself. */
export function helpPointer(topic: string | undefined): string {
  return `Run "berth ${topic === undefined ? "" : `${topic} `}--help" for usage.`;
}

/** A gRPC error (or any error) as the CLI reports it. */
export function describeFailure(e: unknown): CallFailure {
  const s = parseRichStatus(e);
  const status = grpc.status[s.code] ?? `code ${s.code}`;
  return {
    status,
    code: s.code,
    message: s.message,
    ...(s.reason === undefined ? {} : { reason: s.reason }),
    metadata: s.metadata,
    ...(s.retryDelayMs === undefined ? {} : { retryDelayMs: s.retryDelayMs }),
  };
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

function unary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  deadline: Date,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, new grpc.Metadata(), { deadline }, (err, response) => {
      if (err) reject(err);
      else resolve(response);
    });
  });
}
