import assert from "node:assert/strict";
import { test } from "node:test";
import { createFileRegistry } from "@bufbuild/protobuf";
import { berthFileDescriptors } from "./file-descriptors.js";

test("the served descriptors resolve every service and message strictly, imports included", () => {
  const registry = createFileRegistry({
    $typeName: "google.protobuf.FileDescriptorSet",
    file: berthFileDescriptors(),
  });
  for (const service of [
    "berth.v1.CapacityService",
    "berth.internal.v1.WorkerService",
    "berth.internal.v1.GossipService",
    "grpc.health.v1.Health",
  ]) {
    assert.ok(registry.getService(service), `${service} is described`);
  }
  const window = registry.getMessage("berth.v1.TimeWindow");
  assert.equal(window?.field.start?.message?.typeName, "google.protobuf.Timestamp");
});
