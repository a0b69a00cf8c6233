// Opens the journal named by a --journal URL. cassandra:// plugs in here later.
import { isAbsolute } from "node:path";
import type { Journal } from "../journal/journal.js";
import { SqliteJournal } from "../journal/sqlite-journal.js";

/** Thrown when a journal URL is malformed or names a journal this build cannot open. */
export class InvalidJournalUrlError extends Error {
  override readonly name = "InvalidJournalUrlError";
  constructor(
    readonly url: string,
    readonly problem: string,
  ) {
    super(`invalid journal URL ${JSON.stringify(url)}: ${problem}`);
  }
}

/** A parsed journal URL. */
export type JournalLocation = {
  readonly kind: "sqlite";
  readonly path: string;
  readonly synchronous: "FULL" | "NORMAL";
};

/**
 * Parses `sqlite:///abs/path.db[?synchronous=FULL|NORMAL]` (default FULL).
 * @throws InvalidJournalUrlError for anything else
 */
export function parseJournalUrl(url: string): JournalLocation {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InvalidJournalUrlError(url, "not a URL; expected sqlite:///absolute/path.db");
  }
  switch (u.protocol) {
    case "sqlite:": {
      if (u.host !== "") {
        throw new InvalidJournalUrlError(
          url,
          `sqlite URLs have no host (got "${u.host}"); write sqlite:///absolute/path.db`,
        );
      }
      const path = decodeURIComponent(u.pathname);
      if (!isAbsolute(path) || path === "/" || path.endsWith("/")) {
        throw new InvalidJournalUrlError(url, "expected sqlite:///absolute/path.db");
      }
      let synchronous: "FULL" | "NORMAL" = "FULL";
      for (const [k, v] of u.searchParams) {
        if (k !== "synchronous") {
          throw new InvalidJournalUrlError(url, `unknown option "${k}"; known: synchronous`);
        }
        const s = v.toUpperCase();
        if (s !== "FULL" && s !== "NORMAL") {
          throw new InvalidJournalUrlError(url, `synchronous must be FULL or NORMAL, got "${v}"`);
        }
        synchronous = s;
      }
      return { kind: "sqlite", path, synchronous };
    }
    case "cassandra:":
      throw new InvalidJournalUrlError(
        url,
        "the Cassandra journal is not available in this build yet",
      );
    default:
      throw new InvalidJournalUrlError(
        url,
        `unsupported scheme "${u.protocol.replace(/:$/, "")}"; expected sqlite:///absolute/path.db`,
      );
  }
}

/** Opens the journal a URL names (see {@link parseJournalUrl}). */
export async function openJournal(url: string): Promise<Journal> {
  const location = parseJournalUrl(url);
  switch (location.kind) {
    case "sqlite":
      return SqliteJournal.open(location.path, { synchronous: location.synchronous });
  }
}
