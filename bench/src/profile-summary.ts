// Summarises the .cpuprofile files written by profile-hook.ts: per process, busy time
// and the functions with the most self time, optionally only between two wall-clock
// times (UTC HH:MM:SS, as the benchmark's progress lines print them).
//
//   node --import tsx bench/src/profile-summary.ts /tmp/prof [--from T] [--to T] [--top 25]
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
  wallMs: number;
  monoUs: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { from: { type: "string" }, to: { type: "string" }, top: { type: "string" } },
});
const dir = positionals[0] ?? "/tmp/prof";
const top = Number(values.top ?? 25);
const utc = (t: string | undefined): number | undefined => {
  if (t === undefined) return undefined;
  const [h = 0, m = 0, s = 0] = t.split(":").map(Number);
  const d = new Date();
  d.setUTCHours(h, m, s, 0);
  return d.getTime();
};
const from = utc(values.from) ?? Number.NEGATIVE_INFINITY;
const to = utc(values.to) ?? Number.POSITIVE_INFINITY;

for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
  const p = JSON.parse(readFileSync(`${dir}/${file}`, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  let t = p.startTime;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    const wall = p.wallMs + (t - p.monoUs) / 1000;
    if (wall < from || wall >= to) return;
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) return;
    if (frame.functionName === "(idle)") {
      idle += dt;
      return;
    }
    busy += dt;
    const where = frame.url.replace(/^.*\/(node_modules|src)\//, "$1/");
    const key = `${frame.functionName || "(anonymous)"} ${where}:${frame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  console.log(`\n${file}: busy ${(busy / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s`);
  for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(
      `${(us / 1e3).toFixed(0).padStart(7)} ms ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${key}`,
    );
  }
}
