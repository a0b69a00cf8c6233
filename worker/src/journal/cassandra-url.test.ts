import assert from "node:assert/strict";
import { test } from "node:test";
import { CassandraUrlError, parseCassandraJournalUrl } from "./cassandra-url.js";

test("a minimal URL names the hosts and keyspace; everything else stays default", () => {
  assert.deepEqual(parseCassandraJournalUrl("cassandra://127.0.0.1:9042/berth"), {
    contactPoints: ["127.0.0.1:9042"],
    keyspace: "berth",
  });
  assert.deepEqual(parseCassandraJournalUrl("cassandra://cass-0.cass,cass-1.cass:9142/berth"), {
    contactPoints: ["cass-0.cass:9042", "cass-1.cass:9142"],
    keyspace: "berth",
  });
});

test("every option is parsed into CassandraJournalOptions", () => {
  assert.deepEqual(
    parseCassandraJournalUrl(
      "cassandra://h1:9042,[::1]:9043/berth_prod?dc=dc1&replication=dc1:3,dc2:3&consistency=LOCAL_QUORUM&serialConsistency=LOCAL_SERIAL&timeoutMs=5000&bucketSize=5000",
    ),
    {
      contactPoints: ["h1:9042", "[::1]:9043"],
      keyspace: "berth_prod",
      localDataCenter: "dc1",
      replication: { class: "NetworkTopologyStrategy", dataCenters: { dc1: 3, dc2: 3 } },
      consistency: "LOCAL_QUORUM",
      serialConsistency: "LOCAL_SERIAL",
      requestTimeoutMs: 5000,
      bucketSize: 5000,
    },
  );
  assert.deepEqual(parseCassandraJournalUrl("cassandra://h:1/k?rf=3&dc=datacenter1"), {
    contactPoints: ["h:1"],
    keyspace: "k",
    localDataCenter: "datacenter1",
    replication: { class: "SimpleStrategy", replication_factor: 3 },
  });
});

test("malformed URLs are rejected with CassandraUrlError saying what is wrong", () => {
  const cases: [string, string][] = [
    ["sqlite:///x.db", "expected cassandra://host:9042[,host:9042]/keyspace?dc=datacenter1"],
    [
      "cassandra:///berth",
      "no host; expected cassandra://host:9042[,host:9042]/keyspace?dc=datacenter1",
    ],
    [
      "cassandra://h:9042",
      "no keyspace; expected cassandra://host:9042[,host:9042]/keyspace?dc=datacenter1",
    ],
    [
      "cassandra://h:9042/",
      "no keyspace; expected cassandra://host:9042[,host:9042]/keyspace?dc=datacenter1",
    ],
    ["cassandra://h:99999/k", "port must be 1..65535, got 99999"],
    ["cassandra://h:9042,/k", 'invalid host ""; expected host or host:port'],
    [
      "cassandra://h/berth-prod",
      'keyspace must be a letter followed by up to 47 letters, digits or underscores, got "berth-prod"',
    ],
    [
      "cassandra://h/k?consistency=ONE",
      'consistency must be one of QUORUM, LOCAL_QUORUM, EACH_QUORUM, ALL, got "ONE"',
    ],
    [
      "cassandra://h/k?serialConsistency=QUORUM",
      'serialConsistency must be one of SERIAL, LOCAL_SERIAL, got "QUORUM"',
    ],
    ["cassandra://h/k?timeoutMs=0", 'timeoutMs must be a positive integer, got "0"'],
    ["cassandra://h/k?bucketSize=1e4", 'bucketSize must be a positive integer, got "1e4"'],
    ["cassandra://h/k?rf=1&replication=dc1:3", "give either rf or replication, not both"],
    ["cassandra://h/k?replication=dc1", 'replication must look like dc1:3,dc2:3, got "dc1"'],
    ["cassandra://h/k?replication=a:1,a:2", "data centre a listed twice in replication"],
    [
      "cassandra://h/k?timeout=5",
      'unknown option "timeout"; known: dc, rf, replication, consistency, serialConsistency, timeoutMs, bucketSize',
    ],
    ["cassandra://h/k?rf=1&rf=2", 'option "rf" given twice'],
  ];
  for (const [url, problem] of cases) {
    assert.throws(
      () => parseCassandraJournalUrl(url),
      (e: unknown) => {
        assert.ok(e instanceof CassandraUrlError, `${url}: ${String(e)}`);
        assert.equal(e.problem, problem, url);
        assert.equal(e.message, `invalid Cassandra journal URL ${JSON.stringify(url)}: ${problem}`);
        return true;
      },
    );
  }
});
