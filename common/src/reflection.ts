/**
 * What `@grpc/reflection` serves: @berth/proto's {@link berthFileDescriptors}, packed as
 * a grpc-js package definition.
 *
 * `@grpc/proto-loader` descriptors are not usable for this: protobufjs describes a
 * schema as one synthetic file per package with no imports and sets fields such as
 * `extendee: ""`, which strict reflection clients (grpcurl, protoreflect) reject.
 */
import { berthFileDescriptors } from "@berth/proto";
import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { PackageDefinition } from "@grpc/proto-loader";

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
