/**
 * @berth/gateway: the public gRPC API — request validation, routing of pool
 * commands to their owners by ShardMap (with retries across hand-offs), and
 * availability answered from a local gossip replica.
 */
export {
  type CapacityServiceOptions,
  capacityServiceHandlers,
  invalidArgument,
} from "./capacity-service.js";
export {
  type GatewayConfig,
  GatewayConfigError,
  type RunningGateway,
  startGateway,
} from "./gateway.js";
export { parseGatewayArgs, USAGE } from "./main.js";
export {
  type CallOptions,
  type GrpcError,
  type RetryReason,
  type Route,
  Router,
  type RouterMethod,
  type RouterMethods,
  type RouterOptions,
  resolveRoute,
  WORKER_CHANNEL_OPTIONS,
} from "./router.js";
export * from "./validation.js";
