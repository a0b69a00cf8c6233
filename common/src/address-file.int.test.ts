import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  InvalidAddressFileError,
  parseAddressRecord,
  readAddressFile,
  writeAddressFile,
} from "./address-file.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test("an address file written is read back as the same record, and leaves no temp file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "berth-address-file-"));
  dirs.push(dir);
  const file = join(dir, "gateway.addresses.json");
  assert.equal(await readAddressFile(file), undefined, "missing: not written yet");
  const addresses = { grpc: "127.0.0.1:41001", gossip: "127.0.0.1:41002", http: "[::1]:41003" };
  await writeAddressFile(file, addresses, 4242);
  assert.deepEqual(await readAddressFile(file), { version: 1, pid: 4242, addresses });
  await writeAddressFile(file, { grpc: "127.0.0.1:1", http: "127.0.0.1:2" });
  assert.deepEqual(await readAddressFile(file), {
    version: 1,
    pid: process.pid,
    addresses: { grpc: "127.0.0.1:1", http: "127.0.0.1:2" },
  });
  assert.deepEqual(await readdir(dir), ["gateway.addresses.json"]);
});

test("a file that is not a valid version-1 record is refused, saying what is wrong", async () => {
  const dir = await mkdtemp(join(tmpdir(), "berth-address-file-"));
  dirs.push(dir);
  const file = join(dir, "w.json");
  await writeFile(file, "{");
  await assert.rejects(readAddressFile(file), (e: unknown) => {
    assert.ok(e instanceof InvalidAddressFileError);
    assert.equal(e.name, "InvalidAddressFileError");
    assert.match(e.message, /^address file .*w\.json: not JSON/);
    return true;
  });
  const ok = { version: 1, pid: 7, addresses: { grpc: "127.0.0.1:5", http: "127.0.0.1:6" } };
  const cases: [unknown, string][] = [
    [[], "version undefined, expected 1"],
    [{ ...ok, version: 2 }, "version 2, expected 1"],
    [{ ...ok, pid: "7" }, 'pid "7" is not a process id'],
    [{ ...ok, addresses: undefined }, "no addresses object"],
    [{ ...ok, addresses: { http: "127.0.0.1:6" } }, "addresses.grpc is not a host:port string"],
    [
      { ...ok, addresses: { ...ok.addresses, http: "nope" } },
      'addresses.http: invalid address "nope": expected host:port with port 0-65535',
    ],
    [
      { ...ok, addresses: { ...ok.addresses, gossip: "127.0.0.1:0" } },
      "addresses.gossip 127.0.0.1:0 has port 0, not a bound port",
    ],
  ];
  for (const [json, problem] of cases) {
    assert.throws(
      () => parseAddressRecord("/x.json", JSON.stringify(json)),
      (e: unknown) =>
        e instanceof InvalidAddressFileError && e.message === `address file /x.json: ${problem}`,
      JSON.stringify(json),
    );
  }
});
