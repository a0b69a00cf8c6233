// One hop of the raw gRPC ceiling measurement: a plain grpc-js server whose single
// unary method either answers with its payload or forwards it to the next hop.
// No Berth code runs here, so two of these chained are the ceiling Berth's own
// two hops (gateway → worker) are compared against.
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";

const identity = (b: Buffer): Buffer => b;

/** The raw echo method: bytes in, the same bytes out. */
export const echoService: grpc.ServiceDefinition = {
  Echo: {
    path: "/berth.bench.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** A client for a raw echo hop. */
export const EchoClient = grpc.makeGenericClientConstructor(echoService, "Echo");

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { listen: { type: "string", default: "127.0.0.1:0" }, forward: { type: "string" } },
  });
  const server = new grpc.Server();
  const next = values.forward
    ? new EchoClient(values.forward, grpc.credentials.createInsecure())
    : undefined;
  server.addService(echoService, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      if (!next) {
        cb(null, call.request);
        return;
      }
      next.makeUnaryRequest(
        echoService.Echo?.path ?? "",
        identity,
        identity,
        call.request,
        (err: grpc.ServiceError | null, res?: Buffer) => cb(err, res),
      );
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(values.listen, grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  console.log(JSON.stringify({ msg: "echo hop listening", grpc: `127.0.0.1:${port}` }));
  const stop = (): void => {
    server.forceShutdown();
    next?.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (import.meta.main) await main();
