/**
 * The address file (`--address-file`): once a worker or gateway has bound all of its
 * listeners, it writes where they actually listen, so a supervisor that asked for port
 * 0 learns the ports without choosing them itself (choosing, releasing and handing a
 * port to a child races with every other program on the machine).
 */

import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "./atomic-file.js";
import { InvalidAddressError, parseHostPort } from "./observability.js";

/** Where a process listens, as host:port with the port it was given by the OS. */
export interface ListenAddresses {
  /** gRPC (the gateway's public API; the worker's WorkerService, gossip, control). */
  readonly grpc: string;
  /** /metrics, /healthz, /readyz. */
  readonly http: string;
  /** The gateway's GossipService; workers serve gossip on `grpc` and leave this out. */
  readonly gossip?: string;
}

/** The content of an address file, version 1. */
export interface AddressRecord {
  readonly version: 1;
  /** The process that wrote it. */
  readonly pid: number;
  readonly addresses: ListenAddresses;
}

/** Thrown when an address file exists but does not hold a valid version-1 record. */
export class InvalidAddressFileError extends Error {
  override readonly name = "InvalidAddressFileError";
  readonly path: string;
  constructor(path: string, problem: string) {
    super(`address file ${path}: ${problem}`);
    this.path = path;
  }
}

/**
 * Writes `{version: 1, pid, addresses}` to `path` atomically (see writeFileAtomic).
 *
 * @param path the file (its directory must exist)
 * @param addresses the bound addresses (ports as bound, never 0)
 * @param pid the writing process (default this one)
 */
export async function writeAddressFile(
  path: string,
  addresses: ListenAddresses,
  pid: number = process.pid,
): Promise<void> {
  const record: AddressRecord = {
    version: 1,
    pid,
    addresses: {
      grpc: addresses.grpc,
      http: addresses.http,
      ...(addresses.gossip === undefined ? {} : { gossip: addresses.gossip }),
    },
  };
  await writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`);
}

/**
 * Reads and checks the address file at `path`.
 *
 * @returns the record, or undefined when the file does not exist (not written yet)
 * @throws InvalidAddressFileError when it is not JSON or not a valid version-1 record
 */
export async function readAddressFile(path: string): Promise<AddressRecord | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  return parseAddressRecord(path, text);
}

/**
 * Parses the text of an address file.
 *
 * @throws InvalidAddressFileError naming what is wrong
 */
export function parseAddressRecord(path: string, text: string): AddressRecord {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e: unknown) {
    throw new InvalidAddressFileError(path, `not JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null) {
    throw new InvalidAddressFileError(path, "not a JSON object");
  }
  const r = json as Record<string, unknown>;
  if (r.version !== 1) {
    throw new InvalidAddressFileError(path, `version ${JSON.stringify(r.version)}, expected 1`);
  }
  if (typeof r.pid !== "number" || !Number.isSafeInteger(r.pid) || r.pid < 1) {
    throw new InvalidAddressFileError(path, `pid ${JSON.stringify(r.pid)} is not a process id`);
  }
  const a = r.addresses;
  if (typeof a !== "object" || a === null) {
    throw new InvalidAddressFileError(path, "no addresses object");
  }
  const addresses = a as Record<string, unknown>;
  const address = (name: "grpc" | "http" | "gossip"): string | undefined => {
    const v = addresses[name];
    if (v === undefined && name === "gossip") return undefined;
    if (typeof v !== "string") {
      throw new InvalidAddressFileError(path, `addresses.${name} is not a host:port string`);
    }
    let port: number;
    try {
      port = parseHostPort(v).port;
    } catch (e: unknown) {
      if (e instanceof InvalidAddressError) {
        throw new InvalidAddressFileError(path, `addresses.${name}: ${e.message}`);
      }
      throw e;
    }
    if (port === 0) {
      throw new InvalidAddressFileError(
        path,
        `addresses.${name} ${v} has port 0, not a bound port`,
      );
    }
    return v;
  };
  const grpc = address("grpc") as string;
  const http = address("http") as string;
  const gossip = address("gossip");
  return {
    version: 1,
    pid: r.pid,
    addresses: { grpc, http, ...(gossip === undefined ? {} : { gossip }) },
  };
}
