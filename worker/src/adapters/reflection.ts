// gRPC server reflection over Berth's compiled descriptors.
import { berthReflectionPackage } from "@berth/common";
import type { Server } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";

/** Adds the standard reflection service (v1 and v1alpha) describing what a worker serves. */
export function addReflection(server: Pick<Server, "addService">): void {
  new ReflectionService(berthReflectionPackage(), {
    services: [
      "berth.internal.v1.WorkerService",
      "berth.internal.v1.WorkerControlService",
      "berth.internal.v1.GossipService",
      "grpc.health.v1.Health",
    ],
  }).addToServer(server);
}
