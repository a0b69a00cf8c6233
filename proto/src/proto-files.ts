// Where the .proto sources live on disk, for server reflection (an adapter concern
// shared by every process that serves gRPC).
import { fileURLToPath } from "node:url";

/** Absolute path of the directory holding `berth/**` and `google/**` .proto files. */
export const PROTO_ROOT: string = fileURLToPath(new URL("../proto/", import.meta.url));

/** The .proto files of Berth's services, relative to PROTO_ROOT. */
export const SERVICE_PROTO_FILES: readonly string[] = [
  "berth/v1/capacity.proto",
  "berth/internal/v1/worker.proto",
];
