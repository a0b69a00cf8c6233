import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DockerfileBaseError,
  dockerfileBase,
  imageCacheRoot,
  NonNumericUserError,
  NpmVersionUnknownError,
  npmVersionOfNode,
  parseImageUser,
  runtimeSpec,
  standInKey,
  standInLayout,
} from "./config.js";

const DOCKERFILE = [
  "ARG NODE_IMAGE=node:24.21.0-bookworm-slim",
  `FROM \${NODE_IMAGE} AS build`,
  "RUN npm ci",
  "FROM build AS again",
  `FROM \${NODE_IMAGE}`,
  "",
].join("\n");

describe("dockerfileBase", () => {
  test("reads the pinned base, its Node version and Debian suite", () => {
    assert.deepEqual(dockerfileBase(DOCKERFILE), {
      name: "node:24.21.0-bookworm-slim",
      fullName: "docker.io/library/node:24.21.0-bookworm-slim",
      nodeVersion: "24.21.0",
      suite: "bookworm",
    });
  });

  test("rejects a base that is not an exact Node version", () => {
    assert.throws(
      () => dockerfileBase(DOCKERFILE.replace("24.21.0", "24")),
      (e: unknown) =>
        e instanceof DockerfileBaseError &&
        e.message ===
          'Dockerfile: NODE_IMAGE is "node:24-bookworm-slim"; expected node:X.Y.Z-<debian suite>-slim (an exact version)',
    );
  });

  test("rejects a stage that does not build on NODE_IMAGE", () => {
    assert.throws(
      () => dockerfileBase(`${DOCKERFILE}FROM debian:bookworm\n`),
      (e: unknown) =>
        e instanceof DockerfileBaseError &&
        e.message ===
          `Dockerfile: every stage must be FROM \${NODE_IMAGE} or an earlier stage (found FROM debian:bookworm)`,
    );
  });

  test("rejects a Dockerfile without the ARG", () => {
    assert.throws(
      () => dockerfileBase("FROM node:24.21.0-bookworm-slim\n"),
      (e: unknown) =>
        e instanceof DockerfileBaseError &&
        e.message === "Dockerfile: no `ARG NODE_IMAGE=node:X.Y.Z-<suite>-slim`",
    );
  });
});

describe("npmVersionOfNode", () => {
  const changelog = [
    "## 2026-09-08, Version 24.21.0 'Krypton' (LTS), @aduh95",
    "* **src**: something",
    "## 2026-08-26, Version 24.20.0 'Krypton' (LTS), @aduh95",
    "* **deps**: upgrade npm to 11.19.0 (npm team)",
    "## 2026-08-03, Version 24.19.0 'Krypton' (LTS), @aduh95",
    "* **deps**: upgrade npm to 11.18.0 (npm team)",
    "## 2026-07-01, Version 24.1.0 'Krypton', @x",
    "",
  ].join("\n");

  test("a release without an npm upgrade ships the previous release's npm", () => {
    assert.equal(npmVersionOfNode(changelog, "24.21.0"), "11.19.0");
  });

  test("a release with an npm upgrade ships that npm", () => {
    assert.equal(npmVersionOfNode(changelog, "24.19.0"), "11.18.0");
  });

  test("a version is matched whole (24.1.0 is not 24.1.0x), and no upgrade below it is an error", () => {
    assert.throws(
      () => npmVersionOfNode(changelog, "24.1.0"),
      (e: unknown) =>
        e instanceof NpmVersionUnknownError &&
        e.message === 'the Node changelog has no "upgrade npm to …" entry at or before Node 24.1.0',
    );
    assert.throws(() => npmVersionOfNode(changelog, "24.2.0"), NpmVersionUnknownError);
  });
});

test("the stand-in's cache key and layout name the suite, Node, npm and recipe", () => {
  const base = dockerfileBase(DOCKERFILE);
  const key = standInKey(base, "11.19.0");
  assert.equal(key, "bookworm-node24.21.0-npm11.19.0-r1");
  assert.deepEqual(standInLayout("/c", key), {
    root: "/c/bookworm-node24.21.0-npm11.19.0-r1",
    rootfs: "/c/bookworm-node24.21.0-npm11.19.0-r1/rootfs",
    stamp: "/c/bookworm-node24.21.0-npm11.19.0-r1/stamp.json",
    lock: "/c/bookworm-node24.21.0-npm11.19.0-r1.lock",
  });
  assert.equal(imageCacheRoot({}, "/home/u"), "/home/u/.cache/berth/images");
  assert.equal(imageCacheRoot({ XDG_CACHE_HOME: "/x" }, "/home/u"), "/x/berth/images");
  assert.equal(imageCacheRoot({ BERTH_IMAGE_CACHE: "/b", XDG_CACHE_HOME: "/x" }, "/h"), "/b");
});

describe("parseImageUser", () => {
  test("numeric uid[:gid]; no user is root", () => {
    assert.deepEqual(parseImageUser("10001:10001"), { uid: 10001, gid: 10001 });
    assert.deepEqual(parseImageUser("10001"), { uid: 10001, gid: 10001 });
    assert.deepEqual(parseImageUser(""), { uid: 0, gid: 0 });
    assert.deepEqual(parseImageUser(undefined), { uid: 0, gid: 0 });
  });

  test("a user name is refused", () => {
    assert.throws(
      () => parseImageUser("berth"),
      (e: unknown) =>
        e instanceof NonNumericUserError &&
        e.message ===
          `image user "berth" is not numeric uid[:gid]; Kubernetes' runAsNonRoot needs a uid`,
    );
  });
});

describe("runtimeSpec", () => {
  const image = {
    User: "10001:10001",
    Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "NODE_VERSION=24.21.0"],
    WorkingDir: "/app",
    Cmd: ["berth", "--help"],
  };
  type Spec = {
    process: { user: object; args: string[]; env: string[]; cwd: string; noNewPrivileges: boolean };
    root: { path: string; readonly: boolean };
    mounts: { destination: string; type: string; source: string }[];
    linux: { namespaces: { type: string }[] };
  };

  test("runs the image's command as its user, read-only, in the host's network", () => {
    const spec = runtimeSpec({
      image,
      rootfs: "/r",
      readOnlyRoot: true,
      cgroupsPath: "/t/c",
      hostname: "c",
    }) as Spec;
    assert.deepEqual(spec.process.user, { uid: 10001, gid: 10001 });
    assert.deepEqual(spec.process.args, ["berth", "--help"]);
    assert.equal(spec.process.cwd, "/app");
    assert.equal(spec.process.noNewPrivileges, true);
    assert.deepEqual(spec.root, { path: "/r", readonly: true });
    assert.ok(!spec.linux.namespaces.some((n) => n.type === "network"));
  });

  test("args replace Cmd after the Entrypoint, env overrides the image's, volumes are added", () => {
    const spec = runtimeSpec({
      image: { ...image, Entrypoint: ["/init"] },
      rootfs: "/r",
      args: ["berth-worker", "--help"],
      env: { NODE_VERSION: "x", EXTRA: "1" },
      mounts: [
        { type: "tmpfs", destination: "/tmp" },
        { type: "bind", source: "/host/data", destination: "/var/lib/berth" },
      ],
      readOnlyRoot: false,
      cgroupsPath: "/t/c",
      hostname: "c",
    }) as Spec;
    assert.deepEqual(spec.process.args, ["/init", "berth-worker", "--help"]);
    assert.deepEqual(spec.process.env, [
      "PATH=/usr/local/bin:/usr/bin:/bin",
      "NODE_VERSION=x",
      "EXTRA=1",
    ]);
    assert.equal(spec.root.readonly, false);
    const added = spec.mounts.slice(-2).map((m) => [m.destination, m.type, m.source]);
    assert.deepEqual(added, [
      ["/tmp", "tmpfs", "tmpfs"],
      ["/var/lib/berth", "bind", "/host/data"],
    ]);
  });

  test("an image with neither Cmd nor args is refused", () => {
    assert.throws(
      () =>
        runtimeSpec({
          image: { User: "1" },
          rootfs: "/r",
          readOnlyRoot: true,
          cgroupsPath: "/t/c",
          hostname: "c",
        }),
      /the container has no command: give args/,
    );
  });
});
