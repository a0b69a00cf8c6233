import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidJournalUrlError, parseJournalUrl } from "./journal-url.js";

function problem(url: string): string {
  try {
    parseJournalUrl(url);
  } catch (e: unknown) {
    assert.ok(e instanceof InvalidJournalUrlError, String(e));
    assert.equal(e.url, url);
    return e.message;
  }
  return assert.fail(`expected ${url} to be rejected`);
}

describe("journal URLs", () => {
  test("sqlite URLs name an absolute file, with an optional synchronous mode", () => {
    assert.deepEqual(parseJournalUrl("sqlite:///var/lib/berth/journal.db"), {
      kind: "sqlite",
      path: "/var/lib/berth/journal.db",
      synchronous: "FULL",
    });
    assert.deepEqual(parseJournalUrl("sqlite:///tmp/a%20b.db?synchronous=normal"), {
      kind: "sqlite",
      path: "/tmp/a b.db",
      synchronous: "NORMAL",
    });
  });

  test("anything else is refused with a precise reason", () => {
    assert.equal(
      problem("journal.db"),
      'invalid journal URL "journal.db": not a URL; expected sqlite:///absolute/path.db or cassandra://host:port/keyspace',
    );
    assert.equal(
      problem("sqlite://host/x.db"),
      'invalid journal URL "sqlite://host/x.db": sqlite URLs have no host (got "host"); write sqlite:///absolute/path.db',
    );
    assert.match(problem("sqlite:///tmp/x.db?cache=1"), /unknown option "cache"/);
    assert.match(
      problem("sqlite:///tmp/x.db?synchronous=OFF"),
      /synchronous must be FULL or NORMAL/,
    );
    assert.match(problem("mysql://db/berth"), /unsupported scheme "mysql"/);
  });

  test("cassandra URLs name contact points and a keyspace, with driver options", () => {
    assert.deepEqual(
      parseJournalUrl(
        "cassandra://c1:9042,c2:9142/berth?dc=dc1&rf=3&consistency=LOCAL_QUORUM&timeoutMs=2000",
      ),
      {
        kind: "cassandra",
        options: {
          contactPoints: ["c1:9042", "c2:9142"],
          keyspace: "berth",
          localDataCenter: "dc1",
          replication: { class: "SimpleStrategy", replication_factor: 3 },
          consistency: "LOCAL_QUORUM",
          requestTimeoutMs: 2000,
        },
      },
    );
    assert.deepEqual(parseJournalUrl("cassandra://127.0.0.1/berth"), {
      kind: "cassandra",
      options: { contactPoints: ["127.0.0.1:9042"], keyspace: "berth" },
    });
  });

  test("a malformed cassandra URL is refused with the Cassandra parser's reason", () => {
    assert.equal(
      problem("cassandra://c1:9042"),
      'invalid journal URL "cassandra://c1:9042": no keyspace; expected cassandra://host:9042[,host:9042]/keyspace?dc=datacenter1',
    );
    assert.match(
      problem("cassandra://c1:9042/berth?consistency=ONE"),
      /consistency must be one of/,
    );
    assert.match(problem("cassandra://c1:9042/berth?ttl=1"), /unknown option "ttl"/);
    assert.match(problem("cassandra://c1:99999/berth"), /port must be 1\.\.65535/);
  });
});
