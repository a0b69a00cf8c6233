// `npm run bench:kube-config`: what one Kubernetes API call costs a Berth process with
// @kubernetes/client-node's plain KubeConfig (a new TCP + TLS connection per call)
// and with @berth/kubernetes' PooledKubeConfig (kept-alive connections), side by side
// against one real kube-apiserver (testing/src/kubernetes), in alternating rounds: client
// CPU ms per call (this process), wall ms per call, connections opened.
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { loadKubeConfig } from "@berth/kubernetes";
import { goMissingReason, startControlPlane } from "@berth/testing/kubernetes";
import { CoordinationV1Api, type KubeConfig } from "@kubernetes/client-node";

const { values: args } = parseArgs({
  options: {
    calls: { type: "string", default: "200" },
    rounds: { type: "string", default: "3" },
  },
});
const calls = Number(args.calls);
const rounds = Number(args.rounds);
if (!Number.isInteger(calls) || calls < 1 || !Number.isInteger(rounds) || rounds < 1) {
  console.error("bench:kube-config: --calls and --rounds must be positive integers");
  process.exit(2);
}
const skip = goMissingReason();
if (skip) {
  console.error(`bench:kube-config: cannot run without the Kubernetes binaries: ${skip}`);
  process.exit(2);
}
const progress = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

interface Round {
  readonly cpuMsPerCall: number;
  readonly wallMsPerCall: number;
  readonly connections: number;
}

async function measure(kc: KubeConfig): Promise<Round> {
  const api = kc.makeApiClient(CoordinationV1Api);
  let connections = 0;
  const opened = (): void => {
    connections++;
  };
  subscribe("undici:client:connected", opened);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    for (let i = 0; i < calls; i++) await api.listNamespacedLease({ namespace: "default" });
  } finally {
    unsubscribe("undici:client:connected", opened);
  }
  const cpu = process.cpuUsage(cpu0);
  return {
    cpuMsPerCall: (cpu.user + cpu.system) / 1000 / calls,
    wallMsPerCall: (performance.now() - t0) / calls,
    connections,
  };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

progress(
  `load ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}; starting the control plane`,
);
const cp = await startControlPlane();
try {
  const results = { plain: [] as Round[], pooled: [] as Round[] };
  // One warm-up call each: module loading and the first handshake are not what we measure.
  await measure(cp.kubeConfig());
  for (let r = 1; r <= rounds; r++) {
    results.plain.push(await measure(cp.kubeConfig()));
    const pooled = loadKubeConfig(cp.adminKubeconfig);
    results.pooled.push(await measure(pooled));
    await pooled.close();
    progress(
      `round ${r}: plain ${results.plain.at(-1)?.cpuMsPerCall.toFixed(2)} CPU ms/call, pooled ${results.pooled.at(-1)?.cpuMsPerCall.toFixed(2)}`,
    );
  }
  console.log(`\n${calls} sequential listNamespacedLease calls per round, median of ${rounds}:`);
  console.table(
    Object.entries(results).map(([kind, rs]) => ({
      kubeconfig: kind === "plain" ? "KubeConfig (client-node)" : "PooledKubeConfig",
      "client CPU ms/call": median(rs.map((x) => x.cpuMsPerCall)).toFixed(2),
      "wall ms/call": median(rs.map((x) => x.wallMsPerCall)).toFixed(2),
      connections: median(rs.map((x) => x.connections)),
    })),
  );
  progress(
    `load ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
} finally {
  await cp.stop();
}
