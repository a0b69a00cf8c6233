/**
 * Atomic replacement of a small file: what the ShardMap file and the address files
 * are written with, so a reader sees the old content or the new, never a partial one.
 */

import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * Writes `text` to `path` atomically: a temp file in the same directory (so the rename
 * stays on one filesystem), flushed to disk, then renamed over `path`. On failure no
 * temp file is left behind and the error is rethrown.
 *
 * @param path destination file (its directory must exist)
 * @param text the whole new content
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const temp = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`,
  );
  try {
    const file = await open(temp, "w");
    try {
      await file.writeFile(text, "utf8");
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (e: unknown) {
    // Leave no temp file behind; the original error is what the caller needs.
    await rm(temp, { force: true });
    throw e;
  }
}
