/**
 * @berth/proto: the wire contract every Berth process agrees on — generated
 * message and service types, and the pure functions over them.
 */

export * as internal from "./gen/berth/internal/v1/worker.js";
export * as v1 from "./gen/berth/v1/capacity.js";
export { PROTO_ROOT, SERVICE_PROTO_FILES } from "./proto-files.js";
