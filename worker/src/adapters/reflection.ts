// gRPC server reflection over Berth's .proto files.
import { berthReflectionPackage } from "@berth/proto";
import type { Server } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";

/** Adds the standard reflection service (v1 and v1alpha) describing Berth's services. */
export function addReflection(server: Pick<Server, "addService">): void {
  new ReflectionService(berthReflectionPackage()).addToServer(server);
}
