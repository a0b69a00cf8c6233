// ResourceInformer on a real kube-apiserver: it sees objects added, modified and
// deleted; it rides out a kube-apiserver restart (changes made during and after the
// outage arrive, an object deleted during it is reported deleted); and a watch whose
// resourceVersion etcd has compacted away ends in 410 Gone, after which the informer
// lists again and reports what it missed instead of dying.
//
// Leases are served without the watch cache here (--watch-cache-sizes …#0): their
// watches go to etcd, so an etcd compaction makes an old resourceVersion truly gone,
// as it is for any resource whose history the watch cache no longer holds.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  API_VERSION,
  CAPACITY_POOL_KIND,
  CAPACITY_POOL_PLURAL,
  GROUP,
  type InformerEvent,
  type KubeObject,
  LAST_APPLIED_ANNOTATION,
  ResourceInformer,
  stripLastAppliedConfiguration,
  stripManagedFields,
  VERSION,
} from "@berth/kubernetes";
import { type ControlPlane, goMissingReason, startControlPlane } from "@berth/testing/kubernetes";
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
} from "@kubernetes/client-node";
import { pino } from "pino";

const skip = goMissingReason();
if (skip) console.log(`# SKIP informer tests: ${skip}`);

const root = new URL("../../../", import.meta.url).pathname;
const logger = pino({ level: process.env.BERTH_TEST_LOG_LEVEL ?? "silent" });
// Fast retries: the tests wait for recoveries, never for a fixed time.
const restartDelayMs = { initial: 100, max: 1_000 };

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Retries `write` until the API server takes it (it may be down or starting). */
async function eventually<T>(write: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await write();
    } catch (e: unknown) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Every event an informer emits, in order. */
function record<T extends KubeObject>(informer: ResourceInformer<T>) {
  const events: InformerEvent<T>[] = [];
  informer.onChange((e) => events.push(e));
  return {
    events,
    /** `type key` of each event, in order. */
    trail: () => events.map((e) => `${e.type} ${e.key}`),
    saw: (type: InformerEvent<T>["type"], key: string) =>
      events.some((e) => e.type === type && e.key === key),
  };
}

interface Pool extends KubeObject {
  spec?: { capacity?: number };
}

/**
 * A TCP relay to the API server that the test can cut (every connection reset, new
 * ones refused at once) and mend: a client-side network outage, with the API server up.
 */
async function startRelay(targetPort: number): Promise<{
  port: number;
  cut(): void;
  mend(): void;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createServer((client) => {
    if (!open) {
      client.resetAndDestroy();
      return;
    }
    const upstream = tcpConnect(targetPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("relay has no port");
  return {
    port: address.port,
    cut: () => {
      open = false;
      for (const s of sockets) s.resetAndDestroy();
    },
    mend: () => {
      open = true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The admin kubeconfig, pointed at `port` on 127.0.0.1 (the serving certificate names it). */
function viaPort(kc: KubeConfig, port: number): KubeConfig {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error("no current cluster");
  kc.clusters = kc.clusters.map((c) =>
    c.name === cluster.name ? { ...c, server: `https://127.0.0.1:${port}` } : c,
  );
  return kc;
}

describe("ResourceInformer on a real kube-apiserver", { skip }, () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let objects: CustomObjectsApi;
  let leases: CoordinationV1Api;
  let core: CoreV1Api;

  const poolsPath = (ns: string) =>
    `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${CAPACITY_POOL_PLURAL}`;
  const pools = (ns: string) => ({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: CAPACITY_POOL_PLURAL,
  });
  const createPool = (ns: string, name: string, capacity: number) =>
    objects.createNamespacedCustomObject({
      ...pools(ns),
      body: {
        apiVersion: API_VERSION,
        kind: CAPACITY_POOL_KIND,
        metadata: { name },
        spec: { capacity },
      },
    });
  const setCapacity = async (ns: string, name: string, capacity: number) => {
    const pool = (await objects.getNamespacedCustomObject({ ...pools(ns), name })) as Pool;
    await objects.replaceNamespacedCustomObject({
      ...pools(ns),
      name,
      body: { ...pool, spec: { ...pool.spec, capacity } },
    });
  };
  const deletePool = (ns: string, name: string) =>
    objects.deleteNamespacedCustomObject({ ...pools(ns), name });
  const createNamespace = (name: string) => core.createNamespace({ body: { metadata: { name } } });
  /** The server's objects at `path` as key → resourceVersion, to compare with a cache. */
  const serverView = async (ns: string): Promise<Map<string, string | undefined>> => {
    const list = (await objects.listNamespacedCustomObject(pools(ns))) as { items: Pool[] };
    return new Map(
      list.items.map((p) => [`${ns}/${p.metadata?.name}`, p.metadata?.resourceVersion]),
    );
  };
  const cacheView = (informer: ResourceInformer<KubeObject>) =>
    new Map(
      informer
        .list()
        .map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o.metadata?.resourceVersion]),
    );

  before(async () => {
    cp = await startControlPlane({
      apiServerArgs: ["--watch-cache-sizes=leases.coordination.k8s.io#0"],
    });
    kc = cp.kubeConfig();
    objects = kc.makeApiClient(CustomObjectsApi);
    leases = kc.makeApiClient(CoordinationV1Api);
    core = kc.makeApiClient(CoreV1Api);
    const applied = await cp.kubectl(["apply", "-f", join(root, "charts/berth/crds")]);
    assert.equal(applied.code, 0, applied.stderr);
    const established = await cp.kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      `crd/${CAPACITY_POOL_PLURAL}.${GROUP}`,
    ]);
    assert.equal(established.code, 0, established.stderr);
  });
  after(async () => {
    await cp?.stop();
  });

  test("lists what exists, then sees objects added, modified and deleted", async () => {
    const ns = "informer-basic";
    await createNamespace(ns);
    await createPool(ns, "before", 1);
    const informer = new ResourceInformer<Pool>({
      kubeConfig: kc,
      path: poolsPath(ns),
      logger,
      name: "pools-basic",
      restartDelayMs,
    });
    const seen = record(informer);
    assert.equal(informer.hasSynced, false);
    informer.start();
    informer.start();
    try {
      await informer.synced(AbortSignal.timeout(90_000));
      assert.equal(informer.hasSynced, true);
      assert.deepEqual(seen.trail(), [`added ${ns}/before`]);
      const listed = informer.get(`${ns}/before`);
      assert.equal(listed?.kind, CAPACITY_POOL_KIND, "listed objects carry their kind");
      assert.equal(listed?.apiVersion, API_VERSION);

      await createPool(ns, "a", 5);
      await until("a added", () => informer.get(`${ns}/a`) !== undefined);
      await setCapacity(ns, "a", 7);
      await until("a modified", () => informer.get(`${ns}/a`)?.spec?.capacity === 7);
      await deletePool(ns, "a");
      await until("a deleted", () => informer.get(`${ns}/a`) === undefined);

      assert.deepEqual(seen.trail(), [
        `added ${ns}/before`,
        `added ${ns}/a`,
        `modified ${ns}/a`,
        `deleted ${ns}/a`,
      ]);
      assert.equal(seen.events.at(-1)?.object.spec?.capacity, 7, "deleted carries the last state");
      assert.deepEqual(cacheView(informer), await serverView(ns));
      assert.equal(informer.stats().lists, 1);
      assert.equal(informer.stats().connected, true);
    } finally {
      informer.stop();
      informer.stop();
    }
    assert.equal(informer.stats().connected, false);
  });

  test("transform: stripLastAppliedConfiguration drops kubectl's last-applied copy from the cache and keeps every other annotation", async () => {
    const ns = "informer-last-applied";
    await createNamespace(ns);
    const informer = new ResourceInformer<Pool>({
      kubeConfig: kc,
      path: poolsPath(ns),
      logger,
      name: "pools-last-applied",
      restartDelayMs,
      transform: (o) => stripLastAppliedConfiguration(stripManagedFields(o)),
    });
    informer.start();
    try {
      await informer.synced(AbortSignal.timeout(90_000));
      const manifest = {
        apiVersion: API_VERSION,
        kind: CAPACITY_POOL_KIND,
        metadata: { name: "applied", namespace: ns, annotations: { team: "vans" } },
        spec: { capacity: 4 },
      };
      const file = join(cp.dataDir, "applied-pool.json");
      writeFileSync(file, JSON.stringify(manifest));
      const applied = await cp.kubectl(["apply", "-f", file]);
      assert.equal(applied.code, 0, applied.stderr);
      await until("applied added", () => informer.get(`${ns}/applied`) !== undefined);
      const server = (await objects.getNamespacedCustomObject({
        ...pools(ns),
        name: "applied",
      })) as Pool;
      const annotations = (o: Pool | undefined) =>
        o?.metadata?.annotations as Record<string, string> | undefined;
      assert.ok(annotations(server)?.[LAST_APPLIED_ANNOTATION], "kubectl apply wrote it");
      assert.deepEqual(annotations(informer.get(`${ns}/applied`)), { team: "vans" });
    } finally {
      informer.stop();
    }
  });

  test("transform: stripManagedFields caches listed and watched objects without managedFields; writing one back keeps the server's", async () => {
    const ns = "informer-transform";
    await createNamespace(ns);
    await createPool(ns, "listed", 1);
    const informer = new ResourceInformer<Pool>({
      kubeConfig: kc,
      path: poolsPath(ns),
      logger,
      name: "pools-transform",
      restartDelayMs,
      transform: stripManagedFields,
    });
    const seen = record(informer);
    informer.start();
    try {
      await informer.synced(AbortSignal.timeout(90_000));
      // Created by another field manager than the write below, so that a write that
      // wiped managedFields would leave only its own.
      await objects.createNamespacedCustomObject({
        ...pools(ns),
        fieldManager: "berth-test-creator",
        body: {
          apiVersion: API_VERSION,
          kind: CAPACITY_POOL_KIND,
          metadata: { name: "watched" },
          spec: { capacity: 2 },
        },
      });
      await until("watched added", () => informer.get(`${ns}/watched`) !== undefined);
      const server = (await objects.getNamespacedCustomObject({
        ...pools(ns),
        name: "watched",
      })) as Pool;
      assert.ok(Array.isArray(server.metadata?.managedFields), "the server keeps managedFields");
      for (const e of seen.events) {
        assert.equal(e.object.metadata?.managedFields, undefined, `${e.type} ${e.key}`);
        assert.ok(e.object.metadata?.resourceVersion, "the rest of metadata stays");
      }
      // The operator writes cached objects back whole (status, finalizers).
      const cached = informer.get(`${ns}/watched`) as Pool;
      await objects.replaceNamespacedCustomObject({
        ...pools(ns),
        name: "watched",
        body: { ...cached, spec: { capacity: 3 } },
      });
      await until("watched modified", () => informer.get(`${ns}/watched`)?.spec?.capacity === 3);
      const after = (await objects.getNamespacedCustomObject({
        ...pools(ns),
        name: "watched",
      })) as Pool;
      const managers = (o: Pool) =>
        ((o.metadata?.managedFields ?? []) as { manager?: string }[]).map((f) => f.manager);
      assert.deepEqual(managers(server), ["berth-test-creator"]);
      assert.equal(managers(after)[0], "berth-test-creator", "the creator's entry is kept");
      assert.equal(managers(after).length, 2, "and the write's own is added");
      assert.equal(informer.get(`${ns}/watched`)?.metadata?.managedFields, undefined);
    } finally {
      informer.stop();
    }
  });

  test("stop() drops the watch; start() again catches up on what changed meanwhile", async () => {
    const ns = "informer-stop";
    await createNamespace(ns);
    await createPool(ns, "kept", 1);
    await createPool(ns, "dropped", 1);
    const informer = new ResourceInformer<Pool>({
      kubeConfig: kc,
      path: poolsPath(ns),
      logger,
      restartDelayMs,
    });
    const seen = record(informer);
    informer.start();
    try {
      await informer.synced(AbortSignal.timeout(90_000));
      informer.stop();
      await setCapacity(ns, "kept", 2);
      await deletePool(ns, "dropped");
      await createPool(ns, "new", 3);
      assert.equal(informer.get(`${ns}/dropped`)?.spec?.capacity, 1, "stopped: the cache stays");
      informer.start();
      await until("caught up", async () => {
        const server = await serverView(ns);
        return (
          JSON.stringify([...cacheView(informer)].sort()) === JSON.stringify([...server].sort())
        );
      });
      assert.ok(seen.saw("modified", `${ns}/kept`));
      assert.ok(seen.saw("deleted", `${ns}/dropped`));
      assert.ok(seen.saw("added", `${ns}/new`));
    } finally {
      informer.stop();
    }
  });

  test("rides out a kube-apiserver restart: changes during and after the outage arrive, a deletion during it is reported", async (t) => {
    const ns = "informer-restart";
    await createNamespace(ns);
    for (const name of ["kept", "changed", "gone"]) await createPool(ns, name, 1);
    const informer = new ResourceInformer<Pool>({
      kubeConfig: kc,
      path: poolsPath(ns),
      logger,
      name: "pools-restart",
      restartDelayMs,
    });
    const seen = record(informer);
    informer.start();
    try {
      await informer.synced(AbortSignal.timeout(90_000));
      await until("connected", () => informer.stats().connected);

      const restarted = cp.restartApiServer();
      await until("the watch to break", () => !informer.stats().connected);
      // While kube-apiserver is down nothing can write through it; delete "gone" in
      // etcd itself, as a second kube-apiserver of an HA control plane would have.
      await etcdDelete(cp, `/registry/${GROUP}/${CAPACITY_POOL_PLURAL}/${ns}/gone`);
      // Writes sent during the outage land as soon as it is over.
      const during = Promise.all([
        eventually(() => setCapacity(ns, "changed", 9)),
        eventually(() => createPool(ns, "born-during", 2)),
      ]);
      await restarted;
      await during;
      await createPool(ns, "born-after", 3);

      await until("the cache to match the server", async () => {
        const server = await serverView(ns);
        return (
          JSON.stringify([...cacheView(informer)].sort()) === JSON.stringify([...server].sort())
        );
      });
      assert.ok(seen.saw("deleted", `${ns}/gone`), seen.trail().join(", "));
      assert.ok(seen.saw("modified", `${ns}/changed`));
      assert.ok(seen.saw("added", `${ns}/born-during`));
      assert.ok(seen.saw("added", `${ns}/born-after`));
      assert.equal(informer.get(`${ns}/changed`)?.spec?.capacity, 9);
      assert.equal(informer.get(`${ns}/gone`), undefined);
      assert.ok(informer.stats().watchRestarts >= 1);
      await until("connected again", () => informer.stats().connected);
      // Whether it re-watched (the new watch cache still had the events) or listed
      // again (410) depends on timing; both must end as above.
      t.diagnostic(`stats after the restart: ${JSON.stringify(informer.stats())}`);
    } finally {
      informer.stop();
    }
  });

  test("a watch from a compacted resourceVersion gets 410 Gone: the informer lists again and reports what it missed", async () => {
    const ns = "informer-gone";
    await createNamespace(ns);
    const lease = (name: string, holder: string) => ({
      metadata: { name, namespace: ns },
      spec: { holderIdentity: holder },
    });
    await leases.createNamespacedLease({ namespace: ns, body: lease("deleted", "w") });
    await leases.createNamespacedLease({ namespace: ns, body: lease("changed", "w") });
    await leases.createNamespacedLease({ namespace: ns, body: lease("kept", "w") });

    const relay = await startRelay(cp.apiServerPort);
    const informer = new ResourceInformer<KubeObject & { spec?: { holderIdentity?: string } }>({
      kubeConfig: viaPort(cp.kubeConfig(), relay.port),
      path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
      logger,
      name: "leases-gone",
      restartDelayMs,
    });
    const seen = record(informer);
    informer.start();
    try {
      await informer.synced(AbortSignal.timeout(90_000));
      await until("connected", () => informer.stats().connected);
      assert.equal(informer.list().length, 3);

      relay.cut();
      await until("the watch to break", () => !informer.stats().connected);
      await leases.deleteNamespacedLease({ namespace: ns, name: "deleted" });
      const changed = await leases.readNamespacedLease({ namespace: ns, name: "changed" });
      await leases.replaceNamespacedLease({
        namespace: ns,
        name: "changed",
        body: { ...changed, spec: { ...changed.spec, holderIdentity: "other" } },
      });
      await leases.createNamespacedLease({ namespace: ns, body: lease("created", "w") });
      // The informer's resourceVersion is now history etcd no longer keeps.
      await cp.compactEtcd();
      relay.mend();

      await until("listed again", () => informer.stats().lists === 2);
      await until("connected again", () => informer.stats().connected);
      assert.match(informer.stats().lastError ?? "", /^HTTP 410: .*too old/);
      assert.deepEqual(
        informer
          .list()
          .map((l) => `${l.metadata?.name}=${l.spec?.holderIdentity}`)
          .sort(),
        ["changed=other", "created=w", "kept=w"],
      );
      const missed = seen.trail().slice(3).sort();
      assert.deepEqual(missed, [
        `added ${ns}/created`,
        `deleted ${ns}/deleted`,
        `modified ${ns}/changed`,
      ]);

      // Not a dead informer: it keeps watching.
      await leases.deleteNamespacedLease({ namespace: ns, name: "kept" });
      await until("kept deleted", () => informer.get(`${ns}/kept`) === undefined);
      assert.equal(seen.trail().at(-1), `deleted ${ns}/kept`);
    } finally {
      informer.stop();
      await relay.close();
    }
  });
});

/** Deletes one key through etcd's JSON gateway (keys are base64). */
async function etcdDelete(cp: ControlPlane, key: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${cp.etcdClientPort}/v3/kv/deleterange`, {
    method: "POST",
    body: JSON.stringify({ key: btoa(key) }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await res.json()) as { deleted?: string };
  assert.equal(body.deleted, "1", `etcd deleted nothing at ${key}`);
}
