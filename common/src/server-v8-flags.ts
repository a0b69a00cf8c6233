// V8 flags every Berth server process (gateway, worker) sets on itself.
//
// Under load the gateway's peak RSS was ~255–270 MB while it kept ~18 MB alive: its old
// generation filled with dead per-call state (HTTP/2 stream, grpc-js call, Forward
// command) to ~100 MB before a full GC, and those pages stayed resident. Two causes, one
// flag each (docs/benchmarks.md, "Memory: where the gateway's RSS went"):
//
// - `--no-allocation-site-pretenuring`: V8 allocates straight into the old generation
//   the objects of an allocation site whose objects mostly survived a scavenge. Per-call
//   objects in flight at a scavenge qualify, although each dies milliseconds later.
//   Without it they die young, and scavenges get cheaper (fewer old-to-new references).
// - `--heap-growing-percent=20`: the next full GC is due when the old generation has
//   grown 20 % (and at least V8's minimum step) past what the last one kept, instead of
//   V8's dynamic factor, which reaches 4× on a heap this small.
//
// Neither caps anything: the heap still grows to whatever is live, so neither can cause
// an out-of-memory error. Set at run time because NODE_OPTIONS accepts only a few V8
// flags; V8 reads both whenever it decides (to pretenure, or the next GC's limit).
import { setFlagsFromString } from "node:v8";

/** The V8 flags a server process sets unless its command line names them. */
export const SERVER_V8_FLAGS: readonly string[] = [
  "--no-allocation-site-pretenuring",
  "--heap-growing-percent=20",
];

/** `--no-foo-bar=1` → `foo-bar`: a flag's name, without polarity, in dashes. */
function flagName(arg: string): string {
  return (arg.split("=")[0] ?? "").replace(/^--(no-)?/, "").replaceAll("_", "-");
}

/**
 * The flags of {@link SERVER_V8_FLAGS} that {@link setServerV8Flags} sets for a process
 * started with `execArgv`: every one whose name (either polarity, `-` or `_`) the
 * command line does not already give, so an operator's own choice wins.
 */
export function serverV8Flags(execArgv: readonly string[]): string[] {
  const given = new Set(execArgv.filter((a) => a.startsWith("--")).map(flagName));
  return SERVER_V8_FLAGS.filter((f) => !given.has(flagName(f)));
}

/**
 * Sets {@link SERVER_V8_FLAGS} in this process (those its command line does not set).
 * Call it first thing in a server's `main`.
 *
 * @returns the flags set
 */
export function setServerV8Flags(execArgv: readonly string[] = process.execArgv): string[] {
  const flags = serverV8Flags(execArgv);
  if (flags.length > 0) setFlagsFromString(flags.join(" "));
  return flags;
}
