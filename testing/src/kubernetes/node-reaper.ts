/**
 * The cluster's reaper (started by cluster.ts, one per cluster): waits until its stdin
 * closes — the harness died, even of SIGKILL — then undoes the cluster's host changes from
 * `<clusterDir>/host-state.json`. Logs to `<cache>/berth/cluster-reaper.log`.
 *
 *   node --import tsx node-reaper.ts <clusterDir>
 */
import { appendFileSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { kubernetesCacheRoot } from "./build-config.js";
import { type HostState, hostStateFile, teardownHost } from "./node-host.js";

const clusterDir = process.argv[2];
const logFile = join(dirname(kubernetesCacheRoot(process.env, homedir())), "cluster-reaper.log");
const log = (line: string): void => {
  try {
    appendFileSync(logFile, `${new Date().toISOString()} [${process.pid}] ${line}\n`);
  } catch {}
};

if (!clusterDir) {
  log("usage: node-reaper.ts <clusterDir>");
  process.exit(2);
}
// The harness's signals must not reach us: we run only when it is gone.
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, () => undefined);
process.stdin.resume();
process.stdin.on("error", () => undefined);
process.stdin.on("close", () => {
  void (async () => {
    let state: HostState;
    try {
      state = JSON.parse(readFileSync(hostStateFile(clusterDir), "utf8")) as HostState;
    } catch (e: unknown) {
      log(`${clusterDir}: no host state (${String(e)}); nothing to do`);
      process.exit(0);
    }
    log(`harness gone; tearing down ${clusterDir}`);
    const problems = await teardownHost(state, log);
    log(problems.length ? `done with ${problems.length} problem(s)` : "done, nothing left");
    process.exit(problems.length ? 1 : 0);
  })();
});
