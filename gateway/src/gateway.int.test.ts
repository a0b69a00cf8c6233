// The whole gateway in-process, over real gRPC on loopback: the public API, health,
// reflection, gossip and metrics. Owners are FakeWorkers (real grpc-js servers).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  CapacityServiceClient,
  createRegistry,
  encodePageToken,
  GossipServiceClient,
  parseRichStatus,
} from "@berth/common";
import { encodeReservationId, internal, StaticShardMapSource, v1 } from "@berth/proto";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import { pino } from "pino";
import { type RunningGateway, startGateway } from "./gateway.js";
import {
  FakeWorker,
  notOwner,
  reserved,
  shardMapAllOwnedBy,
  unary,
  wireDetails,
} from "./test-support.js";

const pool = "default/van-north";
let owner: FakeWorker;
let source: StaticShardMapSource;
let gateway: RunningGateway;
let client: CapacityServiceClient;
let revision = 1;
const registry = createRegistry("gateway");

function ownedBy(...workers: FakeWorker[]): void {
  const [first] = workers;
  revision++;
  source.set(
    shardMapAllOwnedBy({
      revision,
      owner: first ? "w-0" : "",
      epoch: revision,
      members: workers.map((w, i) => ({ id: `w-${i}`, address: w.address })),
    }),
  );
}

before(async () => {
  owner = await new FakeWorker((c) => {
    if (c.method === "reserve") {
      const r = c.request as v1.ReserveRequest;
      return reserved(r.pool, r.units);
    }
    if (c.method === "release") {
      const r = c.request as v1.ReleaseRequest;
      return v1.ReleaseResponse.fromPartial({
        reservationId: r.reservationId,
        pool,
        units: 3,
        version: 2,
      });
    }
    if (c.method === "getPool") {
      return v1.GetPoolResponse.fromPartial({
        pool: { pool: (c.request as v1.GetPoolRequest).pool, capacity: 10 },
      });
    }
    return {};
  }).start();
  source = new StaticShardMapSource(
    shardMapAllOwnedBy({
      revision,
      owner: "w-0",
      epoch: 1,
      members: [{ id: "w-0", address: owner.address }],
    }),
  );
  gateway = await startGateway({
    grpc: "127.0.0.1:0",
    gossip: "127.0.0.1:0",
    http: "127.0.0.1:0",
    shardMapSource: source,
    nodeId: "gateway-test",
    logger: pino({ level: "silent" }),
    registry,
  });
  client = new CapacityServiceClient(gateway.grpcAddress, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await gateway?.close();
  owner?.stop();
});

async function rejection(p: Promise<unknown>): Promise<grpc.ServiceError> {
  return p.then(
    () => assert.fail("expected the call to fail"),
    (e: unknown) => e as grpc.ServiceError,
  );
}

describe("the gateway's public API", () => {
  const invalid: [
    string,
    "reserve" | "release" | "getAvailability" | "getPool",
    unknown,
    string,
    RegExp,
  ][] = [
    ["an empty pool id", "reserve", { pool: "", units: 1, requestId: "r" }, "pool", /empty/],
    [
      "an oversized pool id",
      "reserve",
      { pool: `a/${"b".repeat(400)}`, units: 1, requestId: "r" },
      "pool",
      /maximum is 317/,
    ],
    ["a malformed pool id", "getPool", { pool: "UPPER/case" }, "pool", /"U" at index 0/],
    ["zero units", "reserve", { pool, units: 0, requestId: "r" }, "units", /1 to 1,000,000, got 0/],
    ["negative units", "reserve", { pool, units: -5, requestId: "r" }, "units", /got -5/],
    [
      "too many units",
      "reserve",
      { pool, units: 1_000_001, requestId: "r" },
      "units",
      /got 1000001/,
    ],
    ["an empty request_id", "reserve", { pool, units: 1, requestId: "" }, "request_id", /empty/],
    [
      "a request_id over 128 characters",
      "reserve",
      { pool, units: 1, requestId: "x".repeat(129) },
      "request_id",
      /maximum is 128/,
    ],
    [
      "a non-printable request_id",
      "reserve",
      { pool, units: 1, requestId: "a\tb" },
      "request_id",
      /U\+0009/,
    ],
    [
      "a malformed reservation id",
      "release",
      { reservationId: "nope" },
      "reservation_id",
      /does not start with "r2\."/,
    ],
    [
      "an oversized reservation id",
      "release",
      { reservationId: "r".repeat(600) },
      "reservation_id",
      /maximum is 512/,
    ],
    [
      "a selector syntax error",
      "getAvailability",
      { labelSelector: "zone in (a" },
      "label_selector",
      /at position \d+/,
    ],
    [
      "a window that ends before it starts",
      "getAvailability",
      { window: { start: { seconds: 10, nanos: 0 }, end: { seconds: 5, nanos: 0 } } },
      "window",
      /start must be before end/,
    ],
    [
      "nanos out of range",
      "getAvailability",
      { window: { start: { seconds: 1, nanos: 1_000_000_000 }, end: { seconds: 5, nanos: 0 } } },
      "window.start.nanos",
      /0 to 999999999/,
    ],
    [
      "seconds beyond RFC 3339",
      "getAvailability",
      { window: { start: { seconds: 1, nanos: 0 }, end: { seconds: 253_402_300_800, nanos: 0 } } },
      "window.end.seconds",
      /9999-12-31T23:59:59Z/,
    ],
    ["negative min_units", "getAvailability", { minUnits: -1 }, "min_units", /got -1/],
    ["page_size over 1,000", "getAvailability", { pageSize: 1001 }, "page_size", /got 1001/],
    ["a forged page_token", "getAvailability", { pageToken: "%%%" }, "page_token", /base64url/],
  ];

  for (const [what, method, request, field, description] of invalid) {
    test(`${what} gets INVALID_ARGUMENT naming the field ${field}`, async () => {
      const calls = owner.calls.length;
      const fns = {
        reserve: [client.reserve, v1.ReserveRequest],
        release: [client.release, v1.ReleaseRequest],
        getAvailability: [client.getAvailability, v1.GetAvailabilityRequest],
        getPool: [client.getPool, v1.GetPoolRequest],
      } as const;
      const [fn, type] = fns[method];
      const err = await rejection(
        unary(client, fn as never, (type.fromPartial as (o: unknown) => unknown)(request)),
      );
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err.details, new RegExp(`^invalid ${field.replace(/\./g, "\\.")}: `));
      assert.match(err.details, description);
      const s = parseRichStatus(err);
      assert.equal(s.reason, "INVALID_FIELD");
      assert.equal(s.metadata.field, field);
      const details = wireDetails(err);
      assert.equal(details.errorInfo?.domain, "berth.dev");
      assert.equal(details.fieldViolations[0]?.field, field);
      assert.match(details.fieldViolations[0]?.description ?? "", description);
      assert.equal(owner.calls.length, calls, "an invalid request never reaches a worker");
    });
  }

  test("a request with several bad fields lists them all as field violations", async () => {
    const err = await rejection(
      unary(
        client,
        client.reserve,
        v1.ReserveRequest.fromPartial({ pool: "", units: 0, requestId: "" }),
      ),
    );
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.deepEqual(
      wireDetails(err).fieldViolations.map((v) => v.field),
      ["pool", "units", "request_id"],
    );
    assert.match(err.details, /\(and 2 more\)$/);
  });

  test("after every invalid request the server still serves a valid one, routed to the owner", async () => {
    const response = await unary(
      client,
      client.reserve,
      v1.ReserveRequest.fromPartial({ pool, units: 3, requestId: "ok-1" }),
    );
    assert.deepEqual(response, reserved(pool, 3));
    const last = owner.calls.at(-1);
    assert.equal(last?.method, "reserve");
    assert.equal(last?.epoch, source.current()?.shards[0]?.epoch);
  });

  test("release routes by the pool its reservation id names", async () => {
    const reservationId = encodeReservationId("other/pool-7", 12, "AAECAwQFBgcICQoLDA0ODw");
    const response = await unary(
      client,
      client.release,
      v1.ReleaseRequest.fromPartial({ reservationId }),
    );
    assert.equal(response.reservationId, reservationId);
    assert.equal(owner.calls.at(-1)?.method, "release");
    assert.deepEqual(owner.calls.at(-1)?.request, { reservationId });
  });

  test("get-pool is answered by the owner", async () => {
    const response = await unary(client, client.getPool, v1.GetPoolRequest.fromPartial({ pool }));
    assert.equal(response.pool?.pool, pool);
    assert.equal(response.pool?.capacity, 10);
  });

  test("a reserve retries through NOT_OWNER after a ShardMap change and reaches the new owner", async () => {
    const next = await new FakeWorker((c) =>
      reserved(pool, (c.request as v1.ReserveRequest).units, 5),
    ).start();
    try {
      const old = await new FakeWorker(() => {
        setTimeout(() => ownedBy(next, old), 20);
        return notOwner(revision + 1, "w-0");
      }).start();
      try {
        ownedBy(old, owner);
        const response = await unary(
          client,
          client.reserve,
          v1.ReserveRequest.fromPartial({ pool, units: 4, requestId: "handoff-1" }),
        );
        assert.deepEqual(response, reserved(pool, 4, 5));
        assert.ok(old.calls.length >= 1);
        assert.equal(next.calls.length, 1);
        assert.equal(next.calls[0]?.epoch, revision);
        // Every attempt of the one client call carried the same call token.
        const tokens = new Set([...old.calls, ...next.calls].map((c) => c.callToken));
        assert.equal(tokens.size, 1);
        assert.match([...tokens][0] ?? "", /^[0-9a-f-]{36}$/);
        // The next client call gets a token of its own.
        await unary(
          client,
          client.reserve,
          v1.ReserveRequest.fromPartial({ pool, units: 4, requestId: "handoff-1" }),
        );
        assert.notEqual(next.calls.at(-1)?.callToken, [...tokens][0]);
      } finally {
        old.stop();
      }
    } finally {
      ownedBy(owner);
      next.stop();
    }
  });

  test("a reserve answers UNAVAILABLE with RetryInfo when no owner answers before the deadline", async () => {
    const gone = await new FakeWorker(() => ({})).start();
    gone.stop();
    ownedBy(gone);
    try {
      const err = await rejection(
        unary(
          client,
          client.reserve,
          v1.ReserveRequest.fromPartial({ pool, units: 1, requestId: "x-1" }),
          // The gateway answers a tenth of the budget early (at most 250 ms): with 3 s,
          // a busy machine still sees its UNAVAILABLE, not its own deadline.
          3000,
        ),
      );
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      const s = parseRichStatus(err);
      assert.equal(s.reason, "OWNER_UNAVAILABLE");
      assert.ok((wireDetails(err).retryDelayMs ?? 0) > 0, "RetryInfo is present");
    } finally {
      ownedBy(owner);
    }
  });

  test("a domain rejection from the owner reaches the client unchanged", async () => {
    const full = await new FakeWorker(() => ({
      error: Object.assign(new Error("pool default/van-north is closed"), {
        code: grpc.status.FAILED_PRECONDITION,
        details: "pool default/van-north is closed",
      }),
    })).start();
    ownedBy(full);
    try {
      const err = await rejection(
        unary(
          client,
          client.reserve,
          v1.ReserveRequest.fromPartial({ pool, units: 1, requestId: "c-1" }),
        ),
      );
      assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
      assert.equal(err.details, "pool default/van-north is closed");
    } finally {
      ownedBy(owner);
      full.stop();
    }
  });
});

describe("availability from the gossip replica", () => {
  // Windows far in the future: a pool whose window has ended has no available units.
  const FUTURE = 4_000_000_000;
  const counters = (
    name: string,
    capacity: number,
    reserved: number,
    zone: string,
  ): internal.PoolCounters =>
    internal.PoolCounters.fromPartial({
      pool: `default/${name}`,
      capacity,
      reserved,
      labels: { zone },
      window: {
        start: { seconds: FUTURE + 1000, nanos: 0 },
        end: { seconds: FUTURE + 2000, nanos: 0 },
      },
      version: 3,
      confirmedAt: { seconds: Math.floor(Date.now() / 1000), nanos: 0 },
    });

  test("pools pushed to the gateway's GossipService are listed with their staleness", async () => {
    const gossip = new GossipServiceClient(
      gateway.gossipAddress,
      grpc.credentials.createInsecure(),
    );
    try {
      const push = await unary(
        gossip,
        gossip.push,
        internal.PushRequest.fromPartial({
          from: "w-0",
          entries: [
            counters("a-north", 10, 4, "north"),
            counters("b-north", 5, 5, "north"),
            counters("c-north", 8, 0, "north"),
            counters("d-south", 9, 0, "south"),
          ],
        }),
      );
      assert.equal(push.accepted, 4);
    } finally {
      gossip.close();
    }
    const first = await unary(
      client,
      client.getAvailability,
      v1.GetAvailabilityRequest.fromPartial({
        labelSelector: "zone=north",
        window: {
          start: { seconds: FUTURE + 1500, nanos: 0 },
          end: { seconds: FUTURE + 1600, nanos: 0 },
        },
        pageSize: 1,
      }),
    );
    assert.deepEqual(
      first.pools.map((p) => [p.pool, p.available]),
      [["default/a-north", 6]],
    );
    assert.ok(first.pools[0]?.staleness !== undefined);
    assert.ok(first.maxStaleness !== undefined && first.asOf !== undefined);
    assert.ok((first.asOf?.seconds ?? 0) > 0);
    assert.equal(first.pools[0]?.labels.zone, "north");
    assert.notEqual(first.nextPageToken, "");
    const second = await unary(
      client,
      client.getAvailability,
      v1.GetAvailabilityRequest.fromPartial({
        labelSelector: "zone=north",
        pageToken: first.nextPageToken,
      }),
    );
    // b-north is full: it has no available unit.
    assert.deepEqual(
      second.pools.map((p) => p.pool),
      ["default/c-north"],
    );
    assert.equal(second.nextPageToken, "");
  });

  test("a well-formed page token past every pool gives an empty page", async () => {
    const response = await unary(
      client,
      client.getAvailability,
      v1.GetAvailabilityRequest.fromPartial({ pageToken: encodePageToken("zzz/zzz") }),
    );
    assert.deepEqual(response.pools, []);
  });
});

describe("health, reflection and metrics", () => {
  test("the standard health service reports SERVING for the server and CapacityService", async () => {
    const Health = grpc.makeGenericClientConstructor(healthService, "Health");
    const health = new Health(gateway.grpcAddress, grpc.credentials.createInsecure());
    try {
      for (const service of ["", "berth.v1.CapacityService"]) {
        const answer = await new Promise<{ status: string }>((resolve, reject) =>
          (health as unknown as Record<string, (...a: unknown[]) => void>).check?.(
            { service },
            (e: Error | null, r: { status: string }) => (e ? reject(e) : resolve(r)),
          ),
        );
        assert.equal(answer.status, "SERVING", `status of ${JSON.stringify(service)}`);
      }
    } finally {
      health.close();
    }
  });

  test("a reflection client lists the services and resolves CapacityService with its imports", async () => {
    const { ask, close } = reflectionClient(gateway.grpcAddress);
    try {
      const listed = (await ask({ listServices: "*" })) as {
        listServicesResponse?: { service: { name: string }[] };
      };
      const names = listed.listServicesResponse?.service.map((s) => s.name) ?? [];
      assert.ok(names.includes("berth.v1.CapacityService"), names.join(", "));
      assert.ok(names.includes("grpc.health.v1.Health"), names.join(", "));
      assert.ok(
        !names.includes("berth.internal.v1.WorkerService"),
        "internal services are not advertised",
      );

      const files = (await ask({ fileContainingSymbol: "berth.v1.CapacityService" })) as {
        fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
        errorResponse?: { errorMessage: string };
      };
      assert.equal(files.errorResponse, undefined, JSON.stringify(files.errorResponse));
      const described = (files.fileDescriptorResponse?.fileDescriptorProto ?? []).map(
        fileNameAndDeps,
      );
      const byName = new Map(described.map((f) => [f.name, f.deps]));
      assert.deepEqual([...(byName.get("berth/v1/capacity.proto") ?? [])].sort(), [
        "google/protobuf/duration.proto",
        "google/protobuf/timestamp.proto",
      ]);
      // Every import is resolvable: its descriptor is in the answer too, and what it
      // defines is what the service's messages reference.
      for (const dep of byName.get("berth/v1/capacity.proto") ?? []) {
        assert.ok(byName.has(dep), `${dep} is missing from ${[...byName.keys()].join(", ")}`);
      }
      // A descriptor-consuming client (here @bufbuild/protobuf's registry, which
      // rejects unresolvable imports and type references) can build the service.
      const protos = new Map(
        (files.fileDescriptorResponse?.fileDescriptorProto ?? []).map((b) => {
          const proto = fromBinary(FileDescriptorProtoSchema, b);
          return [proto.name, proto] as const;
        }),
      );
      const root = protos.get("berth/v1/capacity.proto");
      assert.ok(root, "the answer holds berth/v1/capacity.proto");
      const service = createFileRegistry(root, (name) => protos.get(name)).getService(
        "berth.v1.CapacityService",
      );
      assert.deepEqual(
        service?.methods.map((m) => `${m.name}(${m.input.typeName}) ${m.output.typeName}`),
        [
          "Reserve(berth.v1.ReserveRequest) berth.v1.ReserveResponse",
          "Release(berth.v1.ReleaseRequest) berth.v1.ReleaseResponse",
          "GetAvailability(berth.v1.GetAvailabilityRequest) berth.v1.GetAvailabilityResponse",
          "GetPool(berth.v1.GetPoolRequest) berth.v1.GetPoolResponse",
        ],
      );
      const timestamp = (await ask({ fileByFilename: "google/protobuf/timestamp.proto" })) as {
        fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
      };
      const [first] = timestamp.fileDescriptorResponse?.fileDescriptorProto ?? [];
      assert.equal(first && fileNameAndDeps(first).name, "google/protobuf/timestamp.proto");
      const health = (await ask({ fileContainingSymbol: "grpc.health.v1.Health" })) as {
        fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
      };
      assert.deepEqual(
        (health.fileDescriptorResponse?.fileDescriptorProto ?? []).map(
          (b) => fileNameAndDeps(b).name,
        ),
        ["health/v1/health.proto"],
      );
    } finally {
      close();
    }
  });

  test("reflection serves the .proto comments, so grpcurl describe shows them", async () => {
    const { ask, close } = reflectionClient(gateway.grpcAddress);
    try {
      const files = (await ask({ fileContainingSymbol: "berth.v1.CapacityService" })) as {
        fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
      };
      const capacity = (files.fileDescriptorResponse?.fileDescriptorProto ?? [])
        .map((b) => fromBinary(FileDescriptorProtoSchema, b))
        .find((f) => f.name === "berth/v1/capacity.proto");
      assert.ok(capacity, "the answer holds berth/v1/capacity.proto");
      const reserve = capacity.service
        .find((s) => s.name === "CapacityService")
        ?.method.findIndex((m) => m.name === "Reserve");
      const service = capacity.service.findIndex((s) => s.name === "CapacityService");
      // SourceCodeInfo paths: 6 = FileDescriptorProto.service, 2 = ServiceDescriptorProto.method.
      const commentAt = (...path: number[]) =>
        capacity.sourceCodeInfo?.location.find((l) => l.path.join(".") === path.join("."))
          ?.leadingComments ?? "";
      assert.match(
        commentAt(6, service),
        /UNAVAILABLE\s+the owner of the pool could not be reached/,
      );
      assert.match(
        commentAt(6, service, 2, reserve ?? -1),
        /^ Reserve takes `units` from a pool\./,
      );
    } finally {
      close();
    }
  });

  test("metrics count handled calls by code, and readiness is ready", async () => {
    const base = `http://${gateway.httpAddress}`;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const handled = metrics
      .split("\n")
      .filter((l) => l.startsWith("grpc_server_handled_total{"))
      .find(
        (l) =>
          l.includes('grpc_service="berth.v1.CapacityService"') &&
          l.includes('grpc_method="Reserve"') &&
          l.includes('grpc_code="INVALID_ARGUMENT"'),
      );
    assert.match(handled ?? "", / [1-9]\d*$/, "Reserve INVALID_ARGUMENT is counted");
    assert.match(metrics, /grpc_server_handling_seconds_bucket\{/);
    assert.match(metrics, /berth_gateway_forward_retries_total\{reason="not_owner"/);
    assert.match(metrics, /berth_gateway_replica_pools\{component="gateway"\} 4/);
    // Every answered Reserve has an outcome, the reason of its answer.
    const total = (name: string, ...parts: string[]) =>
      metrics
        .split("\n")
        .filter((l) => l.startsWith(`${name}{`) && parts.every((p) => l.includes(p)))
        .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
    const reserves = total("grpc_server_handled_total", 'grpc_method="Reserve"');
    assert.ok(reserves > 0);
    assert.equal(total("berth_requests_total", 'method="Reserve"'), reserves);
    assert.ok(total("berth_requests_total", 'method="Reserve"', 'outcome="invalid_field"') > 0);
    assert.ok(total("berth_requests_total", 'method="Reserve"', 'outcome="ok"') > 0);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
  });
});

/** The name (field 1) and dependencies (field 3) of an encoded FileDescriptorProto. */
/** A real server-reflection client (v1alpha, what grpcurl speaks first) on `address`. */
function reflectionClient(address: string): {
  ask: (request: object) => Promise<Record<string, unknown>>;
  close: () => void;
} {
  const reflectionRoot = new URL(
    "../../node_modules/@grpc/reflection/build/proto/",
    import.meta.url,
  ).pathname;
  const pkg = grpc.loadPackageDefinition(
    loadSync("grpc/reflection/v1alpha/reflection.proto", {
      includeDirs: [reflectionRoot],
    }),
  ) as unknown as {
    grpc: { reflection: { v1alpha: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const Reflection = pkg.grpc.reflection.v1alpha.ServerReflection;
  const reflection = new Reflection(address, grpc.credentials.createInsecure());
  const ask = (request: object): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const stream = (
        reflection as unknown as Record<
          string,
          () => grpc.ClientDuplexStream<object, Record<string, unknown>>
        >
      ).serverReflectionInfo?.call(reflection);
      if (!stream) return reject(new Error("no serverReflectionInfo method"));
      stream.on("data", (d: Record<string, unknown>) => {
        resolve(d);
        stream.end();
      });
      stream.on("error", reject);
      stream.write(request);
    });
  return { ask, close: () => reflection.close() };
}

function fileNameAndDeps(bytes: Uint8Array): { name: string; deps: string[] } {
  const r = new BinaryReader(bytes);
  let name = "";
  const deps: string[] = [];
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1) name = r.string();
    else if (field === 3) deps.push(r.string());
    else r.skip(wire);
  }
  return { name, deps };
}
