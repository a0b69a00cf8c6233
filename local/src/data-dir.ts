// The data directory of a local cluster belongs to one running supervisor at a time
// (an advisory lock file holding its pid and addresses), and carries the cluster's id.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { mkdir, open, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { clusterIdProblem } from "@berth/proto";

/** What the lock file holds. */
export interface DataDirLockInfo {
  readonly pid: number;
  readonly startedAt: string;
  /** The gateway's gRPC address, once known. */
  readonly gateway?: string;
  /** The control endpoint's address, once known. */
  readonly control?: string;
}

/** Thrown when another running supervisor holds the data directory. */
export class DataDirLockedError extends Error {
  override readonly name = "DataDirLockedError";
  readonly dataDir: string;
  readonly holder: DataDirLockInfo;
  constructor(dataDir: string, lockFile: string, holder: DataDirLockInfo) {
    const where = [
      holder.gateway === undefined ? undefined : `gateway ${holder.gateway}`,
      holder.control === undefined ? undefined : `control ${holder.control}`,
    ].filter((x) => x !== undefined);
    super(
      `${dataDir} is in use by a running Berth cluster (pid ${holder.pid}${where.length > 0 ? `, ${where.join(", ")}` : ""}, started ${holder.startedAt}): stop it first (Ctrl-C in its terminal, or kill ${holder.pid}), or use another --data-dir. If no Berth is running, remove ${lockFile}`,
    );
    this.dataDir = dataDir;
    this.holder = holder;
  }
}

/** A held lock. */
export interface DataDirLock {
  readonly file: string;
  /** Adds the cluster's addresses to the lock file (so a second start can name them). */
  update(info: { gateway: string; control: string }): Promise<void>;
  /** Removes the lock file if it is still this process's. Idempotent. */
  release(): Promise<void>;
  /** Synchronous {@link release}, for `process.on("exit")`. */
  releaseSync(): void;
}

/** Lock files this process holds: a second start inside one process is refused too. */
const heldHere = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e: unknown) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function parseLock(text: string): DataDirLockInfo | undefined {
  try {
    const j = JSON.parse(text) as Partial<DataDirLockInfo>;
    if (typeof j.pid !== "number" || !Number.isSafeInteger(j.pid) || j.pid <= 0) return undefined;
    return {
      pid: j.pid,
      startedAt: typeof j.startedAt === "string" ? j.startedAt : "at an unknown time",
      ...(typeof j.gateway === "string" ? { gateway: j.gateway } : {}),
      ...(typeof j.control === "string" ? { control: j.control } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * Takes the data directory's lock (`<dataDir>/berth.lock`, created exclusively) before
 * anything else is written there. A lock whose pid is dead (a supervisor killed with
 * -9) or that cannot be read is taken over, and `onStale` says so.
 *
 * @throws DataDirLockedError when a live process holds it
 */
export async function lockDataDir(
  dataDir: string,
  onStale: (previous: DataDirLockInfo | undefined, file: string) => void,
): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const file = resolve(dataDir, "berth.lock");
  let info: DataDirLockInfo = { pid: process.pid, startedAt: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, "wx");
      try {
        await handle.writeFile(`${JSON.stringify(info)}\n`);
      } finally {
        await handle.close();
      }
      heldHere.add(file);
      break;
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 2) throw e;
    }
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw e;
    }
    const holder = parseLock(text);
    const live =
      holder !== undefined && (holder.pid === process.pid ? heldHere.has(file) : alive(holder.pid));
    if (live) {
      throw new DataDirLockedError(dataDir, file, holder);
    }
    onStale(holder, file);
    await unlink(file).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    });
  }
  const ours = () => {
    try {
      return parseLock(readFileSync(file, "utf8"))?.pid === process.pid;
    } catch {
      return false;
    }
  };
  let released = false;
  const releaseSync = () => {
    if (released) return;
    released = true;
    heldHere.delete(file);
    if (ours()) {
      try {
        unlinkSync(file);
      } catch {
        // Already gone: nothing to release.
      }
    }
  };
  return {
    file,
    async update(addresses) {
      info = { ...info, ...addresses };
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, `${JSON.stringify(info)}\n`);
      await rename(tmp, file);
    },
    async release() {
      releaseSync();
    },
    releaseSync,
  };
}

/** Thrown when `<dataDir>/cluster-id` holds something that is not a cluster id. */
export class InvalidClusterIdFileError extends Error {
  override readonly name = "InvalidClusterIdFileError";
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}; restore it or use another --data-dir`);
    this.file = file;
  }
}

/**
 * The cluster id of a data directory: read from `<dataDir>/cluster-id`, or generated
 * (64 random bits, hex) and written there the first time. Call with the lock held.
 *
 * @throws InvalidClusterIdFileError when the file is there but malformed
 */
export async function clusterIdOf(dataDir: string): Promise<{ id: string; created: boolean }> {
  const file = resolve(dataDir, "cluster-id");
  if (existsSync(file)) {
    const id = (await readFile(file, "utf8")).trim();
    const problem = id === "" ? "the file is empty" : clusterIdProblem(id);
    if (problem !== undefined) throw new InvalidClusterIdFileError(file, problem);
    return { id, created: false };
  }
  const id = randomBytes(8).toString("hex");
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${id}\n`);
  await rename(tmp, file);
  return { id, created: true };
}
