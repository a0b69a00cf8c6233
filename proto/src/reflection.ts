/**
 * File descriptors for gRPC server reflection that a reflection client can resolve.
 *
 * `@grpc/proto-loader` (protobufjs) describes a loaded schema as one synthetic file
 * per *package* ("berth_v1.proto", "google_protobuf.proto") whose `dependency` list
 * is empty. `@grpc/reflection` serves those as they are, so a client (grpcurl,
 * Postman, protoreflect) that builds descriptors from them finds
 * `.google.protobuf.Timestamp` referenced from a file that imports nothing, and
 * fails. Here each synthetic file is renamed to the real .proto path it came from,
 * given that file's real imports, and the well-known types it imports are served
 * from `@bufbuild/protobuf`'s exact copies of Google's descriptors.
 */
import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { clone, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as wkt from "@bufbuild/protobuf/wkt";
import {
  type DescriptorProto,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { loadSync, type PackageDefinition } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { PROTO_ROOT, SERVICE_PROTO_FILES } from "./proto-files.js";

/** One .proto file to describe: its path relative to `root`, as it is imported. */
export interface ProtoFile {
  readonly root: string;
  readonly path: string;
}

/** Thrown when a schema cannot be described file by file (see {@link reflectionPackageDefinition}). */
export class ReflectionSchemaError extends Error {
  override readonly name = "ReflectionSchemaError";
}

const PACKAGE = /^\s*package\s+([\w.]+)\s*;/m;
const IMPORT = /^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;/gm;

/**
 * Loads `files` and returns a package definition for `ReflectionService` whose file
 * descriptors carry real file names and imports.
 *
 * Each package must be declared by exactly one of `files` (true of Berth's
 * protos); imports must be among `files` or Google's well-known types.
 *
 * @throws ReflectionSchemaError when a file cannot be mapped back to its package
 */
export function reflectionPackageDefinition(files: readonly ProtoFile[]): PackageDefinition {
  const loaded = loadSync(
    files.map((f) => f.path),
    { includeDirs: [...new Set(files.map((f) => f.root))] },
  );
  const byPackage = new Map<string, FileDescriptorProto>();
  for (const definition of Object.values(loaded)) {
    const protos = (definition as { fileDescriptorProtos?: unknown }).fileDescriptorProtos;
    if (!Array.isArray(protos)) continue;
    for (const bytes of protos as Uint8Array[]) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      if (!byPackage.has(file.package)) byPackage.set(file.package, file);
    }
  }

  const out = new Map<string, FileDescriptorProto>();
  const declaredBy = new Map<string, string>();
  const pending: string[] = [];
  for (const f of files) {
    const text = readFileSync(resolve(f.root, f.path), "utf8");
    const pkg = PACKAGE.exec(text)?.[1] ?? "";
    const other = declaredBy.get(pkg);
    if (other !== undefined) {
      throw new ReflectionSchemaError(
        `${f.path} and ${other} both declare package "${pkg}"; reflection needs one file per package`,
      );
    }
    declaredBy.set(pkg, f.path);
    const synthetic = byPackage.get(pkg);
    if (synthetic === undefined) {
      throw new ReflectionSchemaError(`no descriptor was loaded for package "${pkg}" of ${f.path}`);
    }
    const file = clone(FileDescriptorProtoSchema, synthetic);
    file.name = f.path;
    file.dependency = [...text.matchAll(IMPORT)].map((m) => m[1] as string);
    out.set(f.path, file);
    pending.push(...file.dependency);
  }
  while (pending.length > 0) {
    const path = pending.pop() as string;
    if (out.has(path)) continue;
    const known = (wkt as Record<string, unknown>)[
      `file_${path.replace(/\.proto$/, "").replace(/[/.]/g, "_")}`
    ] as { proto?: FileDescriptorProto } | undefined;
    if (known?.proto === undefined) {
      throw new ReflectionSchemaError(
        `${path} is imported but is neither one of the described files nor a well-known type`,
      );
    }
    out.set(path, known.proto);
    pending.push(...known.proto.dependency);
  }
  qualifyTypeNames([...out.values()]);
  const encoded = [...out.values()].map((f) => toBinary(FileDescriptorProtoSchema, f));
  // ReflectionService only reads `fileDescriptorProtos` from the definition's values.
  return { "berth.reflection": { fileDescriptorProtos: encoded } } as unknown as PackageDefinition;
}

/**
 * protobufjs writes type references relative to their scope ("TimeWindow");
 * protoc writes them fully qualified (".berth.v1.TimeWindow"), and some clients
 * only resolve those. Rewrites every field, method and extension reference of
 * `files` to the fully qualified form, resolving it as protoc does: innermost
 * enclosing scope first.
 */
function qualifyTypeNames(files: readonly FileDescriptorProto[]): void {
  const known = new Set<string>();
  const collect = (
    scope: string,
    messages: readonly DescriptorProto[],
    enums: readonly { name: string }[],
  ): void => {
    for (const e of enums) known.add(`${scope}.${e.name}`);
    for (const m of messages) {
      const name = `${scope}.${m.name}`;
      known.add(name);
      collect(name, m.nestedType, m.enumType);
    }
  };
  for (const f of files)
    collect(f.package === "" ? "" : `.${f.package}`, f.messageType, f.enumType);

  const qualify = (ref: string, scope: string): string => {
    if (ref === "" || ref.startsWith(".")) return ref;
    for (let s = scope; ; s = s.slice(0, Math.max(0, s.lastIndexOf(".")))) {
      const candidate = `${s}.${ref}`;
      if (known.has(candidate)) return candidate;
      if (s === "") break;
    }
    throw new ReflectionSchemaError(
      `type ${JSON.stringify(ref)} referenced in ${scope || "<root>"} is not defined`,
    );
  };
  const visit = (scope: string, messages: readonly DescriptorProto[]): void => {
    for (const m of messages) {
      const name = `${scope}.${m.name}`;
      for (const field of [...m.field, ...m.extension]) {
        field.typeName = qualify(field.typeName, name);
        field.extendee = qualify(field.extendee, name);
      }
      visit(name, m.nestedType);
    }
  };
  for (const f of files) {
    const scope = f.package === "" ? "" : `.${f.package}`;
    visit(scope, f.messageType);
    for (const field of f.extension) {
      field.typeName = qualify(field.typeName, scope);
      field.extendee = qualify(field.extendee, scope);
    }
    for (const service of f.service) {
      for (const method of service.method) {
        method.inputType = qualify(method.inputType, scope);
        method.outputType = qualify(method.outputType, scope);
      }
    }
  }
}

/**
 * The descriptors every Berth gRPC server reflects: Berth's services and the
 * standard grpc.health.v1 service, with their imports.
 */
export function berthReflectionPackage(): PackageDefinition {
  // health.proto lives at <root>/health/v1/health.proto in grpc-health-check.
  const healthRoot = resolve(healthProtoPath, "../../..");
  return reflectionPackageDefinition([
    ...SERVICE_PROTO_FILES.map((path) => ({ root: PROTO_ROOT, path })),
    { root: healthRoot, path: relative(healthRoot, healthProtoPath) },
  ]);
}
