/**
 * The exact FileDescriptorProtos that buf compiled from our .proto files (and
 * grpc-health-check's health.proto), with source info so that `grpcurl describe` shows
 * the .proto comments: what gRPC server reflection serves. They are committed in
 * src/gen/descriptors.ts by `npm run proto:gen`, as code rather than data files, so a
 * bundled entrypoint carries them with no file beside it.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { BERTH_DESCRIPTOR_SET_BASE64, HEALTH_DESCRIPTOR_SET_BASE64 } from "./gen/descriptors.js";

const DESCRIPTOR_SETS = [BERTH_DESCRIPTOR_SET_BASE64, HEALTH_DESCRIPTOR_SET_BASE64];

/** Every file descriptor reflection can serve, each once, dependencies included. */
export function berthFileDescriptors(): FileDescriptorProto[] {
  const byName = new Map<string, FileDescriptorProto>();
  for (const set of DESCRIPTOR_SETS) {
    const bytes = Buffer.from(set, "base64");
    for (const file of fromBinary(FileDescriptorSetSchema, bytes).file) {
      if (!byName.has(file.name)) byName.set(file.name, file);
    }
  }
  return [...byName.values()];
}
