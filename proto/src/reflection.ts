/**
 * What gRPC server reflection serves: the exact FileDescriptorProtos that buf
 * compiled from our .proto files (and grpc-health-check's health.proto), with
 * source info so that `grpcurl describe` shows the .proto comments. They are
 * committed in src/gen/descriptors.ts by `npm run proto:gen`, as code rather than
 * data files, so a bundled entrypoint carries them with no file beside it.
 *
 * `@grpc/proto-loader` descriptors are not usable for this: protobufjs describes a
 * schema as one synthetic file per package with no imports and sets fields such as
 * `extendee: ""`, which strict reflection clients (grpcurl, protoreflect) reject.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import type { PackageDefinition } from "@grpc/proto-loader";
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

/**
 * A package definition for `@grpc/reflection`'s `ReflectionService` (which only
 * reads `fileDescriptorProtos`). Pass `{ services: [...] }` to the ReflectionService
 * to advertise only what a server actually serves.
 */
export function berthReflectionPackage(): PackageDefinition {
  const fileDescriptorProtos = berthFileDescriptors().map((f) =>
    Buffer.from(toBinary(FileDescriptorProtoSchema, f)),
  );
  // ReflectionService reads only `fileDescriptorProtos` of each entry; one entry
  // shaped as proto-loader's smallest type definition carries them all.
  return {
    "berth.descriptors": {
      format: "Protocol Buffer 3 EnumDescriptorProto",
      type: {},
      fileDescriptorProtos,
    },
  };
}
