/**
 * Parses the `--journal cassandra://…` URL into {@link CassandraJournalOptions}:
 *
 * ```
 * cassandra://host:port[,host:port…]/keyspace?dc=datacenter1&rf=1&consistency=QUORUM
 *   &serialConsistency=SERIAL&timeoutMs=5000&bucketSize=10000
 * cassandra://h1:9042,h2:9042/berth?dc=dc1&replication=dc1:3,dc2:3
 * ```
 */
import {
  type CassandraJournalOptions,
  CONSISTENCY_NAMES,
  type ConsistencyName,
  SERIAL_CONSISTENCY_NAMES,
  type SerialConsistencyName,
} from "./cassandra-journal.js";
import type { Replication } from "./cassandra-schema.js";
import { keyspaceProblem } from "./cassandra-schema.js";

/** Thrown when a cassandra:// journal URL is malformed; `problem` says what is wrong. */
export class CassandraUrlError extends Error {
  override readonly name = "CassandraUrlError";
  constructor(
    readonly url: string,
    readonly problem: string,
  ) {
    super(`invalid Cassandra journal URL ${JSON.stringify(url)}: ${problem}`);
  }
}

/**
 * The URL with any `user:password@` replaced by `***@`, so an error or a log line
 * never echoes a password someone put in it.
 */
export function redactUserinfo(url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, "$1***@");
}

const OPTIONS = [
  "dc",
  "rf",
  "replication",
  "consistency",
  "serialConsistency",
  "timeoutMs",
  "bucketSize",
] as const;

const EXAMPLE = "cassandra://host:9042[,host:9042]/keyspace?dc=datacenter1";

/**
 * Parses a `cassandra://` journal URL. Hosts default to port 9042. Options:
 * `dc` (local data centre, default datacenter1), `rf` (SimpleStrategy replication
 * factor, default 1) or `replication=dc1:3,dc2:3` (NetworkTopologyStrategy),
 * `consistency` (QUORUM, LOCAL_QUORUM, EACH_QUORUM or ALL), `serialConsistency`
 * (SERIAL or LOCAL_SERIAL), `timeoutMs` (per request), `bucketSize` (events per
 * partition bucket). Unknown options are rejected.
 * @throws CassandraUrlError
 */
export function parseCassandraJournalUrl(url: string): CassandraJournalOptions {
  const fail = (problem: string): never => {
    throw new CassandraUrlError(redactUserinfo(url), problem);
  };
  if (redactUserinfo(url) !== url) {
    fail(
      "credentials do not belong in the URL; set BERTH_CASSANDRA_USERNAME and BERTH_CASSANDRA_PASSWORD in the worker's environment (e.g. from a Secret)",
    );
  }
  const m = /^cassandra:\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(url);
  if (!m) return fail(`expected ${EXAMPLE}`);
  const [, hostList = "", path = "", query = ""] = m;
  if (hostList === "") fail(`no host; expected ${EXAMPLE}`);
  const contactPoints = hostList.split(",").map((h) => parseHostPort(h, fail));

  const keyspace = decodeURIComponent(path.replace(/^\//, ""));
  if (keyspace === "") fail(`no keyspace; expected ${EXAMPLE}`);
  const ksProblem = keyspaceProblem(keyspace);
  if (ksProblem) fail(ksProblem);

  const params = new URLSearchParams(query);
  const seen = new Set<string>();
  for (const key of params.keys()) {
    if (!(OPTIONS as readonly string[]).includes(key)) {
      fail(`unknown option "${key}"; known: ${OPTIONS.join(", ")}`);
    }
    if (seen.has(key)) fail(`option "${key}" given twice`);
    seen.add(key);
  }
  const get = (k: (typeof OPTIONS)[number]) => params.get(k) ?? undefined;
  const positiveInt = (k: (typeof OPTIONS)[number], v: string): number => {
    if (!/^[1-9][0-9]{0,8}$/.test(v)) fail(`${k} must be a positive integer, got "${v}"`);
    return Number(v);
  };

  let replication: Replication | undefined;
  const rf = get("rf");
  const rep = get("replication");
  if (rf !== undefined && rep !== undefined) fail("give either rf or replication, not both");
  if (rf !== undefined) {
    replication = { class: "SimpleStrategy", replication_factor: positiveInt("rf", rf) };
  }
  if (rep !== undefined) {
    const dataCenters: Record<string, number> = {};
    for (const part of rep.split(",")) {
      const dm = /^([A-Za-z0-9_.-]{1,64}):([1-9][0-9]?)$/.exec(part);
      if (!dm) fail(`replication must look like dc1:3,dc2:3, got "${rep}"`);
      const [, dc = "", n = ""] = dm as RegExpExecArray;
      if (dc in dataCenters) fail(`data centre ${dc} listed twice in replication`);
      dataCenters[dc] = Number(n);
    }
    replication = { class: "NetworkTopologyStrategy", dataCenters };
  }

  const consistency = get("consistency");
  if (
    consistency !== undefined &&
    !(CONSISTENCY_NAMES as readonly string[]).includes(consistency)
  ) {
    fail(`consistency must be one of ${CONSISTENCY_NAMES.join(", ")}, got "${consistency}"`);
  }
  const serial = get("serialConsistency");
  if (serial !== undefined && !(SERIAL_CONSISTENCY_NAMES as readonly string[]).includes(serial)) {
    fail(
      `serialConsistency must be one of ${SERIAL_CONSISTENCY_NAMES.join(", ")}, got "${serial}"`,
    );
  }
  const timeout = get("timeoutMs");
  const bucket = get("bucketSize");
  const dc = get("dc");
  if (dc !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(dc)) fail(`invalid dc "${dc}"`);

  return {
    contactPoints,
    keyspace,
    ...(dc !== undefined && { localDataCenter: dc }),
    ...(replication !== undefined && { replication }),
    ...(consistency !== undefined && { consistency: consistency as ConsistencyName }),
    ...(serial !== undefined && { serialConsistency: serial as SerialConsistencyName }),
    ...(timeout !== undefined && { requestTimeoutMs: positiveInt("timeoutMs", timeout) }),
    ...(bucket !== undefined && { bucketSize: positiveInt("bucketSize", bucket) }),
  };
}

function parseHostPort(h: string, fail: (problem: string) => never): string {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(h);
  if (!m) return fail(`invalid host "${h}"; expected host or host:port`);
  const [, host = "", port = "9042"] = m;
  const n = Number(port);
  if (n < 1 || n > 65535) fail(`port must be 1..65535, got ${port}`);
  return `${host}:${n}`;
}
