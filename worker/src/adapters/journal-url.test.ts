import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  cassandraCredentialsFromEnv,
  InvalidCassandraCredentialsError,
  InvalidJournalUrlError,
  parseJournalUrl,
} from "./journal-url.js";

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

describe("Cassandra credentials", () => {
  test("user:password@ in a journal URL is refused without echoing the password", () => {
    for (const url of [
      "cassandra://berth:s3cret-pw@db:9042/berth",
      "cassandra://berth:s3cret-pw@db1:9042,db2:9042/berth?dc=dc1",
      "sqlite://berth:s3cret-pw@/tmp/j.db",
    ]) {
      try {
        parseJournalUrl(url);
        assert.fail(`expected ${url} to be rejected`);
      } catch (e: unknown) {
        assert.ok(e instanceof InvalidJournalUrlError, String(e));
        assert.ok(!e.message.includes("s3cret-pw"), e.message);
        assert.ok(!e.url.includes("s3cret-pw"), e.url);
        assert.ok(!JSON.stringify(e).includes("s3cret-pw"));
        assert.match(e.url, /^[a-z]+:\/\/\*\*\*@/);
      }
    }
    assert.throws(
      () => parseJournalUrl("cassandra://berth:s3cret-pw@db:9042/berth"),
      (e: unknown) =>
        e instanceof InvalidJournalUrlError &&
        e.message ===
          'invalid journal URL "cassandra://***@db:9042/berth": credentials do not belong in the URL; set BERTH_CASSANDRA_USERNAME and BERTH_CASSANDRA_PASSWORD in the worker\'s environment (e.g. from a Secret)',
    );
  });

  test("the login comes from BERTH_CASSANDRA_USERNAME and BERTH_CASSANDRA_PASSWORD, both or neither", () => {
    assert.equal(cassandraCredentialsFromEnv({}), undefined);
    assert.deepEqual(
      cassandraCredentialsFromEnv({
        BERTH_CASSANDRA_USERNAME: "berth",
        BERTH_CASSANDRA_PASSWORD: "pw",
      }),
      { username: "berth", password: "pw" },
    );
    const refused = (env: NodeJS.ProcessEnv, message: string) =>
      assert.throws(
        () => cassandraCredentialsFromEnv(env),
        (e: unknown) => e instanceof InvalidCassandraCredentialsError && e.message === message,
      );
    refused(
      { BERTH_CASSANDRA_USERNAME: "berth" },
      "BERTH_CASSANDRA_PASSWORD is not set but BERTH_CASSANDRA_USERNAME is: set both or neither",
    );
    refused(
      { BERTH_CASSANDRA_PASSWORD: "pw" },
      "BERTH_CASSANDRA_USERNAME is not set but BERTH_CASSANDRA_PASSWORD is: set both or neither",
    );
    refused(
      { BERTH_CASSANDRA_USERNAME: "berth", BERTH_CASSANDRA_PASSWORD: "" },
      "BERTH_CASSANDRA_PASSWORD is empty",
    );
  });
});
