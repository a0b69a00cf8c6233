import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "yaml";
import {
  cassandraJvmArgs,
  cassandraPom,
  cassandraYaml,
  DEFAULT_CASSANDRA_VERSION,
  mavenCopyArgs,
} from "./cassandra-config.js";

test("the generated cassandra.yaml binds both ports to loopback and seeds the node with itself", () => {
  const config = parse(cassandraYaml({ nativePort: 19042, storagePort: 17000 })) as Record<
    string,
    unknown
  >;
  assert.equal(config.listen_address, "127.0.0.1");
  assert.equal(config.rpc_address, "127.0.0.1");
  assert.equal(config.native_transport_port, 19042);
  assert.equal(config.storage_port, 17000);
  assert.equal(config.commitlog_sync, "periodic");
  assert.equal(config.num_tokens, 1);
  assert.deepEqual(config.seed_provider, [
    {
      class_name: "org.apache.cassandra.locator.SimpleSeedProvider",
      parameters: [{ seeds: "127.0.0.1:17000" }],
    },
  ]);
});

test("yaml overrides change, add and remove generated settings", () => {
  const config = parse(
    cassandraYaml({
      nativePort: 1,
      storagePort: 2,
      overrides: {
        write_request_timeout: "5000ms",
        hinted_handoff_enabled: true,
        auto_snapshot: null,
      },
    }),
  ) as Record<string, unknown>;
  assert.equal(config.write_request_timeout, "5000ms");
  assert.equal(config.hinted_handoff_enabled, true);
  assert.equal("auto_snapshot" in config, false);
});

test("the JVM arguments size the heap, load jamm as an agent and end with the daemon class", () => {
  const args = cassandraJvmArgs({
    jarDir: "/jars",
    jammJar: "/jars/jamm-0.4.0.jar",
    heapMb: 384,
    configFile: "/node/cassandra.yaml",
    logbackFile: "/node/logback.xml",
    storageDir: "/node",
    logDir: "/node/logs",
    triggersDir: "/node/triggers",
    extraJvmArgs: ["-Dx=y"],
  });
  assert.ok(args.includes("-Xms384m") && args.includes("-Xmx384m"));
  assert.ok(args.includes("-javaagent:/jars/jamm-0.4.0.jar"));
  assert.ok(args.includes("-Dcassandra.config=file:///node/cassandra.yaml"));
  assert.ok(args.includes("--add-opens=java.base/sun.nio.ch=ALL-UNNAMED"));
  assert.ok(args.indexOf("-Dx=y") < args.indexOf("-cp"));
  assert.deepEqual(args.slice(-3), [
    "-cp",
    "/jars/*",
    "org.apache.cassandra.service.CassandraDaemon",
  ]);
});

test("the pom asks Maven for exactly cassandra-all at the requested version", () => {
  const pom = cassandraPom(DEFAULT_CASSANDRA_VERSION);
  assert.match(pom, /<artifactId>cassandra-all<\/artifactId>/);
  assert.match(
    pom,
    new RegExp(`<version>${DEFAULT_CASSANDRA_VERSION.replaceAll(".", "\\.")}</version>`),
  );
  assert.ok(mavenCopyArgs("/c/pom.xml", "/c/lib").includes("-DoutputDirectory=/c/lib"));
});
