// Opens the journal named by a --journal URL: sqlite:///abs/path.db (the local default)
// or cassandra://host:port[,host:port]/keyspace?… (production).
import { isAbsolute } from "node:path";
import { CassandraJournal, type CassandraJournalOptions } from "../journal/cassandra-journal.js";
import { CassandraUrlError, parseCassandraJournalUrl } from "../journal/cassandra-url.js";
import type { Journal } from "../journal/journal.js";
import { SqliteJournal } from "../journal/sqlite-journal.js";
import { ConnectingJournal, type ConnectingJournalOptions } from "./connecting-journal.js";

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
export type JournalLocation =
  | {
      readonly kind: "sqlite";
      readonly path: string;
      readonly synchronous: "FULL" | "NORMAL";
    }
  | { readonly kind: "cassandra"; readonly options: CassandraJournalOptions };

const EXPECTED = "expected sqlite:///absolute/path.db or cassandra://host:port/keyspace";

/**
 * Parses `sqlite:///abs/path.db[?synchronous=FULL|NORMAL]` (default FULL) or
 * `cassandra://host:port[,host:port]/keyspace[?dc=…&rf=…&consistency=…&timeoutMs=…]`
 * (see parseCassandraJournalUrl for every option).
 * @throws InvalidJournalUrlError for anything else
 */
export function parseJournalUrl(url: string): JournalLocation {
  // Before `new URL`: it rejects the comma-separated host list of a Cassandra URL.
  if (/^cassandra:/i.test(url)) {
    try {
      return { kind: "cassandra", options: parseCassandraJournalUrl(url) };
    } catch (e: unknown) {
      if (e instanceof CassandraUrlError) throw new InvalidJournalUrlError(url, e.problem);
      throw e;
    }
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InvalidJournalUrlError(url, `not a URL; ${EXPECTED}`);
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
    default:
      throw new InvalidJournalUrlError(
        url,
        `unsupported scheme "${u.protocol.replace(/:$/, "")}"; ${EXPECTED}`,
      );
  }
}

/**
 * Opens the journal a URL names (see {@link parseJournalUrl}). SQLite opens at once
 * (a failure throws). Cassandra returns a {@link ConnectingJournal} at once, which
 * connects in the background and retries until Cassandra answers: the worker starts
 * either way and reports the reason it is not ready.
 *
 * @throws InvalidJournalUrlError for a malformed URL
 */
export async function openJournal(
  url: string,
  options: Omit<ConnectingJournalOptions, "connect" | "describe"> = {},
): Promise<Journal> {
  const location = parseJournalUrl(url);
  switch (location.kind) {
    case "sqlite":
      return SqliteJournal.open(location.path, { synchronous: location.synchronous });
    case "cassandra":
      return connectCassandra(location.options, options);
  }
}

/** A {@link ConnectingJournal} over {@link CassandraJournal.connect}. */
export function connectCassandra(
  cassandra: CassandraJournalOptions,
  options: Omit<ConnectingJournalOptions, "connect" | "describe"> = {},
): ConnectingJournal {
  return new ConnectingJournal({
    ...options,
    connect: () => CassandraJournal.connect(cassandra),
    describe: `Cassandra at ${cassandra.contactPoints.join(",")} (keyspace ${cassandra.keyspace})`,
  });
}
