/**
 * Developer CLI for the test Cassandra node:
 *
 *   node --import tsx testing/src/cassandra/cli.ts fetch
 *   node --import tsx testing/src/cassandra/cli.ts start [--port 9042] [--data-dir DIR] [--heap-mb 512] [--fresh]
 *   node --import tsx testing/src/cassandra/cli.ts status
 *   node --import tsx testing/src/cassandra/cli.ts stop
 *
 * `start` runs in the foreground until Ctrl-C (clean stop) or `stop` from another shell.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  type CassandraNode,
  cassandraCacheDir,
  ensureCassandraJars,
  isAlive,
  queryReleaseVersion,
  startCassandra,
} from "./cassandra-node.js";

const USAGE = `usage: cli.ts <command> [options]
  fetch                    download the Cassandra server jars (Maven) into the cache
  start [options]          start a node in the foreground; Ctrl-C stops it cleanly
      --port N             CQL port on 127.0.0.1 (default 9042; 0 = any free port)
      --data-dir DIR       node directory (default <cache>/node; kept between runs)
      --heap-mb N          JVM heap in MiB (default 512)
      --fresh              delete the node directory first
  status                   show the node started by 'start' and whether CQL answers
  stop                     stop the node started by 'start'`;

interface State {
  pid: number;
  cliPid: number;
  contactPoint: string;
  port: number;
  dataDir: string;
  logFile: string;
  startedAt: string;
}

const stateFile = (): string => join(dirname(cassandraCacheDir()), "cli-node.json");

async function readState(): Promise<State | undefined> {
  try {
    return JSON.parse(await readFile(stateFile(), "utf8")) as State;
  } catch {
    return undefined;
  }
}

async function start(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", default: "9042" },
      "data-dir": { type: "string" },
      "heap-mb": { type: "string", default: "512" },
      fresh: { type: "boolean", default: false },
    },
  });
  const port = Number(values.port);
  const heapMb = Number(values["heap-mb"]);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`bad --port ${values.port}`);
  if (!Number.isInteger(heapMb) || heapMb < 128)
    throw new Error(`bad --heap-mb ${values["heap-mb"]}`);
  const previous = await readState();
  if (previous && isAlive(previous.pid)) {
    console.error(`a node is already running (pid ${previous.pid}) at ${previous.contactPoint}`);
    return 1;
  }
  const dataDir = resolve(values["data-dir"] ?? join(dirname(cassandraCacheDir()), "node"));
  if (values.fresh) await rm(dataDir, { recursive: true, force: true });

  // Keep the event loop alive while the (unref'd) JVM runs.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let node: CassandraNode | undefined;
  let interrupted = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted++;
    if (!node || interrupted > 1) {
      // Still starting, or a second Ctrl-C: exit now; the exit hook kills the JVM.
      console.error(`\n${signal}: exiting without a clean stop`);
      process.exit(130);
    }
    console.error(`\n${signal}: stopping Cassandra (pid ${node.pid}) …`);
    void node.stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  node = await startCassandra({ ...(port ? { port } : {}), dataDir, heapMb });
  const state: State = {
    pid: node.pid,
    cliPid: process.pid,
    contactPoint: node.contactPoint,
    port: node.port,
    dataDir: node.dataDir,
    logFile: node.logFile,
    startedAt: new Date().toISOString(),
  };
  await mkdir(dirname(stateFile()), { recursive: true });
  await writeFile(stateFile(), `${JSON.stringify(state, null, 2)}\n`);
  console.log(`contact point: ${node.contactPoint}  (localDataCenter: ${node.localDataCenter})`);
  console.log(`status: node --import tsx testing/src/cassandra/cli.ts status`);
  console.log(`log: ${node.logFile}`);
  console.log("Ctrl-C to stop.");
  const exit = await node.exited;
  clearInterval(keepAlive);
  const current = await readState();
  if (current?.pid === node.pid) await rm(stateFile(), { force: true });
  if (interrupted || exit.signal === "SIGTERM" || exit.code === 0 || exit.code === 143) {
    console.error("Cassandra stopped.");
    return 0;
  }
  console.error(
    `Cassandra exited on its own (${exit.signal ?? `exit code ${exit.code}`}); see ${node.logFile}`,
  );
  return 1;
}

async function status(): Promise<number> {
  const state = await readState();
  if (!state) {
    console.log(`no node started by 'cli.ts start' (no ${stateFile()})`);
    return 1;
  }
  if (!isAlive(state.pid)) {
    console.log(`not running (pid ${state.pid} is gone); last data dir ${state.dataDir}`);
    return 1;
  }
  try {
    const release = await queryReleaseVersion(state.port);
    console.log(
      `running: Cassandra ${release}, pid ${state.pid}, contact point ${state.contactPoint}`,
    );
    console.log(`data dir ${state.dataDir}, log ${state.logFile}`);
    return 0;
  } catch (e: unknown) {
    console.log(
      `pid ${state.pid} is alive but CQL on ${state.contactPoint} does not answer: ${e instanceof Error ? e.message : String(e)}`,
    );
    return 1;
  }
}

async function stop(): Promise<number> {
  const state = await readState();
  if (!state || !isAlive(state.pid)) {
    console.log("no node running");
    if (state) await rm(stateFile(), { force: true });
    return 0;
  }
  process.kill(state.pid, "SIGTERM");
  const deadline = Date.now() + 30_000;
  while (isAlive(state.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (isAlive(state.pid)) {
    console.log(`pid ${state.pid} ignored SIGTERM for 30 s; sending SIGKILL`);
    process.kill(state.pid, "SIGKILL");
  }
  if (existsSync(stateFile())) await rm(stateFile(), { force: true });
  console.log(`stopped Cassandra (pid ${state.pid})`);
  return 0;
}

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case "fetch":
      console.log(await ensureCassandraJars());
      return 0;
    case "start":
      return start(rest);
    case "status":
      return status();
    case "stop":
      return stop();
    default:
      console.error(USAGE);
      return command === undefined || command === "help" || command === "--help" ? 0 : 2;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  },
);
