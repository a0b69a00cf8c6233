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
      'invalid journal URL "journal.db": not a URL; expected sqlite:///absolute/path.db',
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
    assert.match(problem("cassandra://c1:9042/berth"), /Cassandra journal is not available/);
    assert.match(problem("mysql://db/berth"), /unsupported scheme "mysql"/);
  });
});
