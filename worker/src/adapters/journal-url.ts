// Opens the journal named by a --journal URL: sqlite:///abs/path.db (the local default)
// or cassandra://host:port[,host:port]/keyspace?… (production).
import { isAbsolute } from "node:path";
import {
  type CassandraCredentials,
  CassandraJournal,
  type CassandraJournalOptions,
} from "../journal/cassandra-journal.js";
import {
  CassandraUrlError,
  parseCassandraJournalUrl,
  redactUserinfo,
} from "../journal/cassandra-url.js";
import type { Journal } from "../journal/journal.js";
import { SqliteJournal } from "../journal/sqlite-journal.js";
import { ConnectingJournal, type ConnectingJournalOptions } from "./connecting-journal.js";

/** Thrown when a journal URL is malformed or names a journal this build cannot open. */
export class InvalidJournalUrlError extends Error {
  override readonly name = "InvalidJournalUrlError";
  /** The URL, with any `user:password@` redacted. */
  readonly url: string;
  constructor(
    url: string,
    readonly problem: string,
  ) {
    super(`invalid journal URL ${JSON.stringify(redactUserinfo(url))}: ${problem}`);
    this.url = redactUserinfo(url);
  }
}

/**
 * Thrown when only one of BERTH_CASSANDRA_USERNAME and BERTH_CASSANDRA_PASSWORD is set,
 * or one is empty. The message never holds the password.
 */
export class InvalidCassandraCredentialsError extends Error {
  override readonly name = "InvalidCassandraCredentialsError";
}

/** The environment variables a worker reads its Cassandra login from. */
export const CASSANDRA_CREDENTIALS_ENV = {
  username: "BERTH_CASSANDRA_USERNAME",
  password: "BERTH_CASSANDRA_PASSWORD",
} as const;

/**
 * The Cassandra login from the environment: both variables, or neither (no login).
 * @throws InvalidCassandraCredentialsError
 */
export function cassandraCredentialsFromEnv(
  env: NodeJS.ProcessEnv,
): CassandraCredentials | undefined {
  const username = env[CASSANDRA_CREDENTIALS_ENV.username];
  const password = env[CASSANDRA_CREDENTIALS_ENV.password];
  if (username === undefined && password === undefined) return undefined;
  for (const [name, value] of [
    [CASSANDRA_CREDENTIALS_ENV.username, username],
    [CASSANDRA_CREDENTIALS_ENV.password, password],
  ] as const) {
    if (value === undefined) {
      throw new InvalidCassandraCredentialsError(
        `${name} is not set but ${name === CASSANDRA_CREDENTIALS_ENV.username ? CASSANDRA_CREDENTIALS_ENV.password : CASSANDRA_CREDENTIALS_ENV.username} is: set both or neither`,
      );
    }
    if (value === "") throw new InvalidCassandraCredentialsError(`${name} is empty`);
  }
  return { username: username as string, password: password as string };
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
      if (e instanceof CassandraUrlError) throw new InvalidJournalUrlError(e.url, e.problem);
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
  options: Omit<ConnectingJournalOptions, "connect" | "describe"> & {
    /** The Cassandra login (see {@link cassandraCredentialsFromEnv}); unused by SQLite. */
    readonly cassandraCredentials?: CassandraCredentials;
  } = {},
): Promise<Journal> {
  const location = parseJournalUrl(url);
  const { cassandraCredentials, ...connecting } = options;
  switch (location.kind) {
    case "sqlite":
      return SqliteJournal.open(location.path, { synchronous: location.synchronous });
    case "cassandra":
      return connectCassandra(
        {
          ...location.options,
          ...(cassandraCredentials === undefined ? {} : { credentials: cassandraCredentials }),
        },
        connecting,
      );
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
