/**
 * grpc-js bindings of Berth's services. @berth/proto carries each service as a
 * framework-agnostic generic definition (ts-proto `outputServices=generic-definitions`:
 * method names, streaming flags and message codecs, no gRPC library); this module turns
 * one into what grpc-js needs — the service definition a server registers handlers with
 * (`server.addService(WorkerServiceService, handlers)`), the handler type
 * (`WorkerServiceServer`) and the client class (`new WorkerServiceClient(address,
 * credentials, options)`) — under the names ts-proto's `outputServices=grpc-js` gives them.
 */

import { internal, v1 } from "@berth/proto";
import {
  type CallOptions,
  type ChannelCredentials,
  type Client,
  type ClientDuplexStream,
  type ClientOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ClientWritableStream,
  type handleBidiStreamingCall,
  type handleClientStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type Metadata,
  makeGenericClientConstructor,
  type ServiceError,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";

/** What a generic definition knows of a message type: its binary codec. */
interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

/** One method of a generic service definition. */
interface GenericMethod {
  readonly name: string;
  // biome-ignore lint/suspicious/noExplicitAny: a codec of any message; each method's own types are inferred below.
  readonly requestType: MessageCodec<any>;
  readonly requestStream: boolean;
  // biome-ignore lint/suspicious/noExplicitAny: as above.
  readonly responseType: MessageCodec<any>;
  readonly responseStream: boolean;
}

/** A generic service definition as ts-proto emits it. */
interface GenericService {
  readonly name: string;
  readonly fullName: string;
  readonly methods: { readonly [method: string]: GenericMethod };
}

type RequestOf<M extends GenericMethod> = ReturnType<M["requestType"]["decode"]>;
type ResponseOf<M extends GenericMethod> = ReturnType<M["responseType"]["decode"]>;

/** The grpc-js definition of one method, with its streaming flags as literal types. */
export interface GrpcMethodDefinition<
  Req,
  Res,
  ReqStream extends boolean,
  ResStream extends boolean,
> {
  readonly path: string;
  readonly requestStream: ReqStream;
  readonly responseStream: ResStream;
  readonly requestSerialize: (value: Req) => Buffer;
  readonly requestDeserialize: (value: Buffer) => Req;
  readonly responseSerialize: (value: Res) => Buffer;
  readonly responseDeserialize: (value: Buffer) => Res;
}

/** The grpc-js service definition of a generic definition `S`. */
export type GrpcServiceOf<S extends GenericService> = {
  readonly [K in keyof S["methods"]]: GrpcMethodDefinition<
    RequestOf<S["methods"][K]>,
    ResponseOf<S["methods"][K]>,
    S["methods"][K]["requestStream"],
    S["methods"][K]["responseStream"]
  >;
};

type HandlerOf<M extends GenericMethod> = M["requestStream"] extends true
  ? M["responseStream"] extends true
    ? handleBidiStreamingCall<RequestOf<M>, ResponseOf<M>>
    : handleClientStreamingCall<RequestOf<M>, ResponseOf<M>>
  : M["responseStream"] extends true
    ? handleServerStreamingCall<RequestOf<M>, ResponseOf<M>>
    : handleUnaryCall<RequestOf<M>, ResponseOf<M>>;

/** The handlers a server registers for service `S`, one per method. */
export type ServerOf<S extends GenericService> = UntypedServiceImplementation & {
  [K in keyof S["methods"]]: HandlerOf<S["methods"][K]>;
};

type UnaryCallback<Res> = (error: ServiceError | null, response: Res) => void;

/** A client's unary method (the overloads grpc-js clients have). */
export interface UnaryMethod<Req, Res> {
  (request: Req, callback: UnaryCallback<Res>): ClientUnaryCall;
  (request: Req, metadata: Metadata, callback: UnaryCallback<Res>): ClientUnaryCall;
  (
    request: Req,
    metadata: Metadata,
    options: Partial<CallOptions>,
    callback: UnaryCallback<Res>,
  ): ClientUnaryCall;
}

/** A client's client-streaming method. */
export interface ClientStreamingMethod<Req, Res> {
  (callback: UnaryCallback<Res>): ClientWritableStream<Req>;
  (metadata: Metadata, callback: UnaryCallback<Res>): ClientWritableStream<Req>;
  (options: Partial<CallOptions>, callback: UnaryCallback<Res>): ClientWritableStream<Req>;
  (
    metadata: Metadata,
    options: Partial<CallOptions>,
    callback: UnaryCallback<Res>,
  ): ClientWritableStream<Req>;
}

/** A client's server-streaming method. */
export interface ServerStreamingMethod<Req, Res> {
  (request: Req, options?: Partial<CallOptions>): ClientReadableStream<Res>;
  (request: Req, metadata?: Metadata, options?: Partial<CallOptions>): ClientReadableStream<Res>;
}

/** A client's bidirectional-streaming method. */
export interface BidiStreamingMethod<Req, Res> {
  (): ClientDuplexStream<Req, Res>;
  (options: Partial<CallOptions>): ClientDuplexStream<Req, Res>;
  (metadata: Metadata, options?: Partial<CallOptions>): ClientDuplexStream<Req, Res>;
}

type ClientMethodOf<M extends GenericMethod> = M["requestStream"] extends true
  ? M["responseStream"] extends true
    ? BidiStreamingMethod<RequestOf<M>, ResponseOf<M>>
    : ClientStreamingMethod<RequestOf<M>, ResponseOf<M>>
  : M["responseStream"] extends true
    ? ServerStreamingMethod<RequestOf<M>, ResponseOf<M>>
    : UnaryMethod<RequestOf<M>, ResponseOf<M>>;

/** A grpc-js client of service `S`: one method per RPC, plus grpc-js's Client (close, …). */
export type ClientOf<S extends GenericService> = Client & {
  [K in keyof S["methods"]]: ClientMethodOf<S["methods"][K]>;
};

/** The class of {@link ClientOf}: `new (address, credentials, options?)`. */
export interface ClientConstructorOf<S extends GenericService> {
  new (
    address: string,
    credentials: ChannelCredentials,
    options?: Partial<ClientOptions>,
  ): ClientOf<S>;
  readonly service: GrpcServiceOf<S>;
  readonly serviceName: string;
}

/**
 * The grpc-js service definition of `service`: path `/<full name>/<Method>`, messages
 * encoded and decoded by their generated codecs.
 */
export function grpcServiceOf<S extends GenericService>(service: S): GrpcServiceOf<S> {
  const methods: Record<string, GrpcMethodDefinition<unknown, unknown, boolean, boolean>> = {};
  for (const [key, m] of Object.entries(service.methods)) {
    const { requestType: req, responseType: res } = m;
    methods[key] = {
      path: `/${service.fullName}/${m.name}`,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      requestSerialize: (value) => Buffer.from(req.encode(value).finish()),
      requestDeserialize: (value) => req.decode(value),
      responseSerialize: (value) => Buffer.from(res.encode(value).finish()),
      responseDeserialize: (value) => res.decode(value),
    };
  }
  return methods as GrpcServiceOf<S>;
}

/** The grpc-js client class of `service`. */
export function grpcClientOf<S extends GenericService>(service: S): ClientConstructorOf<S> {
  return makeGenericClientConstructor(
    grpcServiceOf(service),
    service.fullName,
  ) as unknown as ClientConstructorOf<S>;
}

/** berth.v1.CapacityService (the public API), for grpc-js servers. */
export const CapacityServiceService = grpcServiceOf(v1.CapacityServiceDefinition);
/** berth.v1.CapacityService's grpc-js service definition. */
export type CapacityServiceService = typeof CapacityServiceService;
/** The handlers of berth.v1.CapacityService. */
export type CapacityServiceServer = ServerOf<typeof v1.CapacityServiceDefinition>;
/** A grpc-js client of berth.v1.CapacityService. */
export const CapacityServiceClient = grpcClientOf(v1.CapacityServiceDefinition);
/** A grpc-js client of berth.v1.CapacityService. */
export type CapacityServiceClient = ClientOf<typeof v1.CapacityServiceDefinition>;

/** berth.internal.v1.WorkerService (gateways and the control plane → the owner), for grpc-js servers. */
export const WorkerServiceService = grpcServiceOf(internal.WorkerServiceDefinition);
/** berth.internal.v1.WorkerService's grpc-js service definition. */
export type WorkerServiceService = typeof WorkerServiceService;
/** The handlers of berth.internal.v1.WorkerService. */
export type WorkerServiceServer = ServerOf<typeof internal.WorkerServiceDefinition>;
/** A grpc-js client of berth.internal.v1.WorkerService. */
export const WorkerServiceClient = grpcClientOf(internal.WorkerServiceDefinition);
/** A grpc-js client of berth.internal.v1.WorkerService. */
export type WorkerServiceClient = ClientOf<typeof internal.WorkerServiceDefinition>;

/** berth.internal.v1.WorkerControlService (a worker's shard states), for grpc-js servers. */
export const WorkerControlServiceService = grpcServiceOf(internal.WorkerControlServiceDefinition);
/** berth.internal.v1.WorkerControlService's grpc-js service definition. */
export type WorkerControlServiceService = typeof WorkerControlServiceService;
/** The handlers of berth.internal.v1.WorkerControlService. */
export type WorkerControlServiceServer = ServerOf<typeof internal.WorkerControlServiceDefinition>;
/** A grpc-js client of berth.internal.v1.WorkerControlService. */
export const WorkerControlServiceClient = grpcClientOf(internal.WorkerControlServiceDefinition);
/** A grpc-js client of berth.internal.v1.WorkerControlService. */
export type WorkerControlServiceClient = ClientOf<typeof internal.WorkerControlServiceDefinition>;

/** berth.internal.v1.GossipService (pool counters between nodes), for grpc-js servers. */
export const GossipServiceService = grpcServiceOf(internal.GossipServiceDefinition);
/** berth.internal.v1.GossipService's grpc-js service definition. */
export type GossipServiceService = typeof GossipServiceService;
/** The handlers of berth.internal.v1.GossipService. */
export type GossipServiceServer = ServerOf<typeof internal.GossipServiceDefinition>;
/** A grpc-js client of berth.internal.v1.GossipService. */
export const GossipServiceClient = grpcClientOf(internal.GossipServiceDefinition);
/** A grpc-js client of berth.internal.v1.GossipService. */
export type GossipServiceClient = ClientOf<typeof internal.GossipServiceDefinition>;
