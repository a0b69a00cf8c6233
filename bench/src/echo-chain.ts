// The raw grpc-js ceiling of `npm run bench`: two echo-hop.ts processes chained
// (first → last). Calling `last` measures one hop, calling `first` two.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** One echo hop process and its address. */
export interface Hop {
  readonly child: ChildProcess;
  readonly address: string;
}

/** The two chained hops. */
export interface Echo {
  readonly first: Hop;
  readonly last: Hop;
  close(): void;
}

async function spawnHop(forward?: string): Promise<Hop> {
  const script = fileURLToPath(new URL("./echo-hop.ts", import.meta.url));
  const child = spawn(
    process.execPath,
    ["--import", "tsx", script, ...(forward ? ["--forward", forward] : [])],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const address = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`echo hop exited with ${code}`)));
    rl.once("line", (line) => resolve((JSON.parse(line) as { grpc: string }).grpc));
  });
  return { child, address };
}

/** Starts both hops; `close` stops them. */
export async function startEcho(): Promise<Echo> {
  const last = await spawnHop();
  const first = await spawnHop(last.address);
  return {
    first,
    last,
    close: () => {
      first.child.kill("SIGTERM");
      last.child.kill("SIGTERM");
    },
  };
}
