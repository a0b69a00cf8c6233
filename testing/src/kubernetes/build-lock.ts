/**
 * A cross-process lock file for the build cache: `link(2)` of a pid file onto the lock path
 * is atomic, so exactly one process holds it; a lock whose pid is dead is taken over.
 */
import { link, readFile, rm, writeFile } from "node:fs/promises";

/** Thrown when a lock held by a live process was not released within the deadline. */
export class LockTimeoutError extends Error {
  override readonly name = "LockTimeoutError";
  constructor(
    /** The lock file. */
    readonly lockPath: string,
    /** The pid that held it. */
    readonly holder: number,
  ) {
    super(`timed out waiting for process ${holder}, which holds ${lockPath}`);
  }
}

/** Options of {@link withFileLock}. */
export interface LockOptions {
  /** Give up after this long while a live process holds the lock; default 90 min. */
  readonly timeoutMs?: number;
  /** Called every `noticeEveryMs` while waiting, with the holder's pid. */
  readonly onWait?: (holder: number, waitedMs: number) => void;
  /** Default 10 000 ms. */
  readonly noticeEveryMs?: number;
  /** Poll interval; default 500 ms. */
  readonly pollMs?: number;
  /** The pid written into the lock; default this process's (tests pass others). */
  readonly pid?: number;
}

/** True when a process with this pid exists (EPERM counts as alive). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e: unknown) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `fn` while holding `lockPath`. Waits while another live process holds it; takes it
 * over when the holder is dead (or the file is unreadable garbage); removes it afterwards.
 */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  options: LockOptions = {},
): Promise<T> {
  const pid = options.pid ?? process.pid;
  const mine = `${lockPath}.${pid}.${Math.random().toString(36).slice(2)}`;
  const timeoutMs = options.timeoutMs ?? 90 * 60_000;
  const noticeEveryMs = options.noticeEveryMs ?? 10_000;
  const started = Date.now();
  let lastNotice = started;
  await writeFile(mine, String(pid));
  try {
    for (;;) {
      try {
        await link(mine, lockPath);
        break;
      } catch (e: unknown) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const holder = Number((await readFile(lockPath, "utf8").catch(() => "")).trim());
      if (!Number.isSafeInteger(holder) || holder <= 0 || !isAlive(holder)) {
        // Stale (its process died mid-build) or torn: take it over. Two processes may both
        // see it stale; link() then lets only one of them win.
        await takeOver(lockPath, holder);
        continue;
      }
      if (Date.now() - started > timeoutMs) throw new LockTimeoutError(lockPath, holder);
      if (Date.now() - lastNotice >= noticeEveryMs) {
        lastNotice = Date.now();
        options.onWait?.(holder, Date.now() - started);
      }
      await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
    }
  } finally {
    await rm(mine, { force: true });
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}

/** Removes a stale lock only if it still names the same dead holder. */
async function takeOver(lockPath: string, holder: number): Promise<void> {
  const now = Number((await readFile(lockPath, "utf8").catch(() => "")).trim());
  if (now === holder || Number.isNaN(now) || now === 0) await rm(lockPath, { force: true });
}
