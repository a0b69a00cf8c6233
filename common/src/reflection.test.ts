import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBinary, isFieldSet } from "@bufbuild/protobuf";
import { FieldDescriptorProtoSchema, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { berthReflectionPackage } from "./reflection.js";

test("the package definition carries each file once, with real names and no stray fields", () => {
  const def = berthReflectionPackage();
  const files = Object.values(def).flatMap((d) =>
    "fileDescriptorProtos" in d ? (d.fileDescriptorProtos as Buffer[]) : [],
  );
  const decoded = files.map((b) => fromBinary(FileDescriptorProtoSchema, b));
  const names = decoded.map((f) => f.name);
  assert.deepEqual(names.length, new Set(names).size);
  assert.ok(names.includes("berth/v1/capacity.proto"));
  assert.ok(names.includes("google/protobuf/timestamp.proto"));
  const capacity = decoded.find((f) => f.name === "berth/v1/capacity.proto");
  assert.deepEqual(capacity?.dependency, [
    "google/protobuf/duration.proto",
    "google/protobuf/timestamp.proto",
  ]);
  for (const m of capacity?.messageType ?? []) {
    for (const f of m.field) {
      const extendee = isFieldSet(f, FieldDescriptorProtoSchema.field.extendee);
      assert.equal(extendee, false, `${m.name}.${f.name} must not carry an extendee`);
    }
  }
});
