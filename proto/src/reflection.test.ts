import assert from "node:assert/strict";
import { test } from "node:test";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { PROTO_ROOT, SERVICE_PROTO_FILES } from "./proto-files.js";
import { ReflectionSchemaError, reflectionPackageDefinition } from "./reflection.js";

function describedFiles() {
  const definition = reflectionPackageDefinition(
    SERVICE_PROTO_FILES.map((path) => ({ root: PROTO_ROOT, path })),
  );
  const bytes = Object.values(definition).flatMap(
    (d) => (d as { fileDescriptorProtos?: Uint8Array[] }).fileDescriptorProtos ?? [],
  );
  return new Map(
    bytes.map((b) => {
      const proto = fromBinary(FileDescriptorProtoSchema, b);
      return [proto.name, proto] as const;
    }),
  );
}

test("every described file has its real name and imports, and the imports are described too", () => {
  const files = describedFiles();
  assert.deepEqual([...files.keys()].sort(), [
    "berth/internal/v1/worker.proto",
    "berth/v1/capacity.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/timestamp.proto",
  ]);
  assert.deepEqual(files.get("berth/internal/v1/worker.proto")?.dependency, [
    "berth/v1/capacity.proto",
    "google/protobuf/timestamp.proto",
  ]);
});

test("a strict descriptor registry resolves every type the services reference", () => {
  const files = describedFiles();
  const registry = createFileRegistry(
    files.get("berth/internal/v1/worker.proto") ?? assert.fail("worker.proto missing"),
    (name) => files.get(name),
  );
  const worker = registry.getService("berth.internal.v1.WorkerService");
  assert.equal(worker?.method.reserve?.output.typeName, "berth.v1.ReserveResponse");
  const counters = registry.getMessage("berth.internal.v1.PoolCounters");
  assert.equal(counters?.field.confirmedAt?.message?.typeName, "google.protobuf.Timestamp");
  assert.equal(counters?.field.labels?.fieldKind, "map");
});

test("two files of one package cannot be described file by file", () => {
  assert.throws(
    () =>
      reflectionPackageDefinition([
        { root: PROTO_ROOT, path: "berth/v1/capacity.proto" },
        { root: PROTO_ROOT, path: "berth/v1/capacity.proto" },
      ]),
    (e: unknown) =>
      e instanceof ReflectionSchemaError &&
      e.message ===
        'berth/v1/capacity.proto and berth/v1/capacity.proto both declare package "berth.v1"; reflection needs one file per package',
  );
});
