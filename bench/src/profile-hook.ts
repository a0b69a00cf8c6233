// CPU profiling of every process of a benchmark run. `--cpu-prof` is not allowed in
// NODE_OPTIONS, but `--import` is, and child processes inherit it:
//
//   BERTH_PROF_DIR=/tmp/prof NODE_OPTIONS="--import tsx --import $PWD/bench/src/profile-hook.ts" \
//     npm run bench -- --requests 10000 --rounds 1
//   node_modules/.bin/node --import tsx bench/src/profile-summary.ts /tmp/prof --from 12:00:05 --to 12:00:09
//
// Each process writes <dir>/<pid>-<script>.cpuprofile when it exits, with the wall
// clock of its start so the summary can cut one scenario's time window out of it.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { basename, dirname } from "node:path";

const dir = process.env.BERTH_PROF_DIR ?? "/tmp/prof";
const session = new Session();
session.connect();
session.post("Profiler.enable");
session.post("Profiler.setSamplingInterval", { interval: 500 });
session.post("Profiler.start");
const wallMs = Date.now();
const monoUs = Number(process.hrtime.bigint() / 1000n);
let written = false;
process.on("exit", () => {
  if (written) return;
  written = true;
  // The inspector answers synchronously on the main thread, so this runs before exit.
  session.post("Profiler.stop", (err, res) => {
    if (err) return;
    // gateway/src/main.ts → gateway-main, bench/src/main.ts → bench-main.
    const script = process.argv[1] ?? "node";
    let where = basename(dirname(script));
    if (where === "src") where = basename(dirname(dirname(script)));
    const name = `${where}-${basename(script).replace(/\.[cm]?[jt]s$/, "")}`;
    const id = process.argv.find((a) => /^worker-\d+$/.test(a));
    writeFileSync(
      `${dir}/${process.pid}-${name}${id === undefined ? "" : `-${id}`}.cpuprofile`,
      JSON.stringify({ ...res.profile, wallMs, monoUs }),
    );
  });
});
