// The cost of the gRPC glue, grpc-js as Berth builds it against nice-grpc, measured in
// one process in alternating rounds so a noisy machine weighs on every variant alike
// (ADR 0005). Run by hand, not by the test command:
//   npm run bench:grpc-glue [-- --rounds 9 --seconds 1.5 --concurrency 1,8,64]
//
// One unary call of berth.internal.v1.WorkerService/Reserve over loopback HTTP/2, the
// client and the server in this process (so CPU per call is both sides together):
//   grpc-js     Berth today: grpc-services.ts's server definition and client class,
//               the cluster-id server interceptor and client interceptor
//               (cluster-id.ts), instrumentService's grpc_server_* and
//               berth_requests_total (grpc-server-metrics.ts).
//   nice        nice-grpc over the ts-proto generic definition (what it consumes
//               natively), a cluster-id server middleware, a metrics server middleware
//               doing what instrumentService does, a cluster-id client middleware.
//   nice-grpcjs the same middleware, nice-grpc given grpc-services.ts's grpc-js
//               definition instead (no fromPartial copy on encode; see the ADR).
// The handler does no work: it answers from the request, so what is measured is the
// glue (framing, codecs, metadata, middleware, promises), not Berth's domain.

import { parseArgs } from "node:util";
import {
  CLUSTER_ID_HEADER,
  INTERNAL_PATH_PREFIX,
  internal,
  STATUS_DETAILS_KEY,
  type v1,
} from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import {
  type CallContext,
  ClientError,
  type ClientMiddleware,
  createChannel,
  createClient,
  createClientFactory,
  createServer,
  Metadata,
  ServerError,
  type ServerMiddleware,
  type ServiceImplementation,
} from "nice-grpc";
import { Registry } from "prom-client";
import { clusterClientOptions, clusterIdServerInterceptor } from "./cluster-id.js";
import {
  createGrpcServerMetrics,
  createRequestOutcomes,
  type GrpcServerMetrics,
  instrumentService,
  outcomeOf,
  type RequestOutcomes,
} from "./grpc-server-metrics.js";
import {
  type WorkerServiceClient as GrpcJsClient,
  WorkerServiceClient,
  type WorkerServiceServer,
  WorkerServiceService,
} from "./grpc-services.js";
import { type RichStatusError, richStatus } from "./rich-status.js";

const CLUSTER_ID = "bench-cluster";
const HOST = "127.0.0.1";

/** A Reserve as a gateway sends it to an owner. */
const REQUEST: internal.ReserveRequest = {
  request: {
    pool: "delivery/north-2030-06-04-morning",
    units: 2,
    requestId: "order-1001-0123456789abcdef",
  },
  epoch: 7,
  callToken: "c0ffee00c0ffee00c0ffee00c0ffee00",
};

/** The answer, built from the request as the real handler builds it from the decider's reply. */
function answerOf(req: internal.ReserveRequest): v1.ReserveResponse {
  const pool = req.request?.pool ?? "";
  return {
    reservationId: `${pool}#42.k5bJ3mV0aXh8Qw2Yt4Rz9A`,
    pool,
    units: req.request?.units ?? 0,
    replayed: false,
    version: 42,
  };
}

const unimplemented = (): never => {
  throw new Error("not part of the benchmark");
};

/** One way of making the call: `call()` resolves with one answer; `close()` ends it all. */
interface Variant {
  readonly name: string;
  call(): Promise<unknown>;
  /** A call with no cluster id: what the cluster-id check refuses (code, details trailer). */
  refused(): Promise<{ code: number; richDetails: boolean }>;
  close(): Promise<void>;
}

function metricsOn(registry: Registry): { grpc: GrpcServerMetrics; outcomes: RequestOutcomes } {
  return { grpc: createGrpcServerMetrics(registry), outcomes: createRequestOutcomes(registry) };
}

/** Berth's glue as worker-server.ts and the gateway build it. */
async function grpcJsVariant(): Promise<Variant> {
  const metrics = metricsOn(new Registry());
  const server = new grpc.Server({
    interceptors: [clusterIdServerInterceptor(CLUSTER_ID, () => {})],
  });
  const handlers: WorkerServiceServer = {
    reserve(call, callback) {
      callback(null, answerOf(call.request));
    },
    release: unimplemented,
    getPool: unimplemented,
    configure: unimplemented,
    echo: unimplemented,
    forward: unimplemented,
  };
  server.addService(
    WorkerServiceService,
    instrumentService(WorkerServiceService, handlers, metrics.grpc, metrics.outcomes),
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${HOST}:0`, grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  const client: GrpcJsClient = new WorkerServiceClient(
    `${HOST}:${port}`,
    grpc.credentials.createInsecure(),
    clusterClientOptions(CLUSTER_ID),
  );
  const stranger: GrpcJsClient = new WorkerServiceClient(
    `${HOST}:${port}`,
    grpc.credentials.createInsecure(),
  );
  return {
    name: "grpc-js",
    call: () =>
      new Promise((resolve, reject) =>
        client.reserve(REQUEST, (err, res) => (err ? reject(err) : resolve(res))),
      ),
    refused: () =>
      new Promise((resolve) =>
        stranger.reserve(REQUEST, (err) =>
          resolve({
            code: err?.code ?? grpc.status.OK,
            richDetails: (err?.metadata.get(STATUS_DETAILS_KEY).length ?? 0) > 0,
          }),
        ),
      ),
    async close() {
      stranger.close();
      client.close();
      server.forceShutdown();
    },
  };
}

/** nice-grpc's counterpart of clusterIdServerInterceptor. */
function clusterIdServerMiddleware(clusterId: string): ServerMiddleware {
  return async function* clusterId_(call, context) {
    if (call.method.path.startsWith(INTERNAL_PATH_PREFIX)) {
      const caller = context.metadata.get(CLUSTER_ID_HEADER) ?? "";
      if (caller !== clusterId) {
        const refusal = richStatus(grpc.status.PERMISSION_DENIED, "from another cluster", {
          reason: "CLUSTER_MISMATCH",
          metadata: { callerClusterId: caller },
        });
        throw toServerError(refusal, context);
      }
    }
    return yield* call.next(call.request, context);
  };
}

/** A RichStatusError as nice-grpc sends one: its details in the trailer, then a ServerError. */
function toServerError(e: RichStatusError, context: CallContext): ServerError {
  const details = e.metadata.get(STATUS_DETAILS_KEY)[0];
  if (details instanceof Buffer) context.trailer.set(STATUS_DETAILS_KEY, details);
  return new ServerError(e.code, e.details);
}

/** nice-grpc's counterpart of instrumentService (unary calls only, labels per method cached). */
function metricsServerMiddleware(
  metrics: GrpcServerMetrics,
  outcomes: RequestOutcomes,
): ServerMiddleware {
  const labelsByPath = new Map<
    string,
    { grpc_service: string; grpc_method: string; grpc_type: string }
  >();
  return async function* metrics_(call, context) {
    if (call.requestStream || call.responseStream) return yield* call.next(call.request, context);
    let labels = labelsByPath.get(call.method.path);
    if (labels === undefined) {
      const [, service = "unknown", method = "unknown"] = call.method.path.split("/");
      labels = { grpc_service: service, grpc_method: method, grpc_type: "unary" };
      labelsByPath.set(call.method.path, labels);
    }
    const end = metrics.handling.startTimer(labels);
    let code: grpc.status = grpc.status.OK;
    let outcome = "ok";
    try {
      return yield* call.next(call.request, context);
    } catch (e: unknown) {
      code = e instanceof ServerError ? e.code : grpc.status.UNKNOWN;
      outcome = outcomeOf(e);
      throw e;
    } finally {
      metrics.handled.inc({ ...labels, grpc_code: grpc.status[code] ?? String(code) });
      end();
      outcomes.inc({ method: labels.grpc_method, outcome });
    }
  };
}

/** nice-grpc's counterpart of clusterIdClientInterceptor. */
function clusterIdClientMiddleware(clusterId: string): ClientMiddleware {
  return async function* clusterId_(call, options) {
    if (clusterId === "") return yield* call.next(call.request, options);
    const metadata = Metadata(options.metadata).set(CLUSTER_ID_HEADER, clusterId);
    return yield* call.next(call.request, { ...options, metadata });
  };
}

/**
 * nice-grpc with Berth's middleware, over `definition`. Typed through the grpc-js
 * definition: given the ts-proto one, nice-grpc types a method's input as the
 * parameter of `fromPartial`, ts-proto's `Exact<DeepPartial<T>, I>`, which no message
 * interface satisfies (it wants an index signature) unless the code is regenerated with
 * `useExactTypes=false`. The runtime path is the definition's own either way.
 */
async function niceVariant(
  name: string,
  definition: typeof internal.WorkerServiceDefinition | typeof WorkerServiceService,
): Promise<Variant> {
  type Definition = typeof WorkerServiceService;
  const metrics = metricsOn(new Registry());
  const server = createServer()
    .use(clusterIdServerMiddleware(CLUSTER_ID))
    .use(metricsServerMiddleware(metrics.grpc, metrics.outcomes));
  const implementation: ServiceImplementation<Definition> = {
    async reserve(request) {
      return answerOf(request);
    },
    release: unimplemented,
    getPool: unimplemented,
    configure: unimplemented,
    echo: unimplemented,
    forward: unimplemented,
  };
  server.add(definition as Definition, implementation);
  const port = await server.listen(`${HOST}:0`);
  const channel = createChannel(`${HOST}:${port}`);
  const client = createClientFactory()
    .use(clusterIdClientMiddleware(CLUSTER_ID))
    .create(definition as Definition, channel);
  // nice-grpc's ClientError keeps code and message only: the rich details are read
  // from the trailer, through onTrailer.
  const stranger = createClient(definition as Definition, channel);
  return {
    name,
    call: () => client.reserve(REQUEST),
    async refused() {
      let richDetails = false;
      try {
        await stranger.reserve(REQUEST, {
          onTrailer: (trailer) => {
            richDetails = trailer.has(STATUS_DETAILS_KEY);
          },
        });
        return { code: grpc.status.OK, richDetails };
      } catch (e: unknown) {
        return { code: e instanceof ClientError ? e.code : grpc.status.UNKNOWN, richDetails };
      }
    },
    async close() {
      channel.close();
      server.forceShutdown();
    },
  };
}

interface Sample {
  readonly callsPerSecond: number;
  readonly cpuMicrosPerCall: number;
}

/** `concurrency` callers, each calling again as soon as it is answered, for `ms`. */
async function measure(variant: Variant, concurrency: number, ms: number): Promise<Sample> {
  (globalThis as { gc?: () => void }).gc?.();
  let calls = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const until = t0 + ms;
  const caller = async (): Promise<void> => {
    while (performance.now() < until) {
      await variant.call();
      calls++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { callsPerSecond: calls / elapsedS, cpuMicrosPerCall: (cpu.user + cpu.system) / calls };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/** The q-quantile (0..1) of `xs`, interpolated. */
const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = s[Math.floor(at)] as number;
  const hi = s[Math.ceil(at)] as number;
  return lo + (hi - lo) * (at - Math.floor(at));
};

/** A ratio's median with its interquartile range, e.g. `0.912 [0.88–0.95]`. */
const ratio = (xs: readonly number[]): string =>
  `${median(xs).toFixed(3)} [${quantile(xs, 0.25).toFixed(2)}–${quantile(xs, 0.75).toFixed(2)}]`;

/** Half the range as a percentage of the median: how far the rounds scattered. */
const spread = (xs: readonly number[]): number =>
  ((Math.max(...xs) - Math.min(...xs)) / 2 / median(xs)) * 100;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "9" },
      seconds: { type: "string", default: "1.5" },
      concurrency: { type: "string", default: "1,8,64" },
    },
  });
  const rounds = Number(values.rounds);
  const ms = Number(values.seconds) * 1000;
  const levels = values.concurrency.split(",").map(Number);

  const variants = [
    await grpcJsVariant(),
    await niceVariant("nice", internal.WorkerServiceDefinition),
    await niceVariant("nice-grpcjs", WorkerServiceService),
  ];
  // Both sides must work before anything is timed: one call each, checked.
  for (const v of variants) {
    const res = (await v.call()) as v1.ReserveResponse;
    if (res.pool !== REQUEST.request?.pool || res.units !== 2) {
      throw new Error(`${v.name} answered ${JSON.stringify(res)}`);
    }
    const refusal = await v.refused();
    if (refusal.code !== grpc.status.PERMISSION_DENIED || !refusal.richDetails) {
      throw new Error(
        `${v.name} let a call without cluster id through: ${JSON.stringify(refusal)}`,
      );
    }
  }
  // Warm-up (JIT, channel connected), untimed.
  for (const v of variants) for (const c of levels) await measure(v, c, ms / 2);

  const samples = new Map<string, Sample[]>();
  for (let r = 0; r < rounds; r++) {
    // Rotate the order each round so no variant always runs first (or last).
    const order = variants.map((_, i) => variants[(i + r) % variants.length] as Variant);
    for (const c of levels) {
      for (const v of order) {
        const key = `${v.name}@${c}`;
        const list = samples.get(key) ?? [];
        list.push(await measure(v, c, ms));
        samples.set(key, list);
      }
    }
    process.stderr.write(`round ${r + 1}/${rounds} done\n`);
  }
  for (const v of variants) await v.close();

  const pad = (s: string, n: number) => s.padStart(n);
  console.log(
    `${rounds} rounds × ${ms} ms per variant and concurrency; median (± half-range %), client+server CPU in this process; ratios to grpc-js paired by round`,
  );
  console.log(
    `${"variant".padEnd(12)}${pad("conc", 5)}${pad("calls/s", 18)}${pad("CPU µs/call", 18)}${pad("calls/s ratio [IQR]", 24)}${pad("CPU ratio [IQR]", 24)}`,
  );
  for (const c of levels) {
    const base = samples.get(`grpc-js@${c}`) ?? [];
    for (const v of variants) {
      const list = samples.get(`${v.name}@${c}`) ?? [];
      const rate = list.map((s) => s.callsPerSecond);
      const cpu = list.map((s) => s.cpuMicrosPerCall);
      // Ratios are paired by round (same minute, same machine load), then the median taken.
      const rateRatio = list.map((s, i) => s.callsPerSecond / (base[i]?.callsPerSecond ?? NaN));
      const cpuRatio = list.map((s, i) => s.cpuMicrosPerCall / (base[i]?.cpuMicrosPerCall ?? NaN));
      console.log(
        `${v.name.padEnd(12)}${pad(String(c), 5)}${pad(`${median(rate).toFixed(0)} (±${spread(rate).toFixed(1)}%)`, 18)}${pad(`${median(cpu).toFixed(1)} (±${spread(cpu).toFixed(1)}%)`, 18)}${pad(ratio(rateRatio), 24)}${pad(ratio(cpuRatio), 24)}`,
      );
    }
  }
}

if (import.meta.main) await main();
