import assert from "node:assert/strict";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation, service as healthService } from "grpc-health-check";
import {
  InternalTlsError,
  type InternalTransport,
  loadInternalTls,
  plaintextTransport,
  readInternalTlsDir,
} from "./internal-tls.js";
import {
  type CertificateAuthority,
  createCertificateAuthority,
  issueCertificate,
  writeInternalTlsDir,
} from "./testing/pki.js";

const Health = grpc.makeGenericClientConstructor(healthService, "Health");

let root: string;
let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let serverDir: string;
let server: grpc.Server;
let serverTransport: InternalTransport;
let port: number;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "berth-tls-"));
  ca = await createCertificateAuthority(join(root, "pki"));
  otherCa = await createCertificateAuthority(join(root, "other-pki"), "ca", "another-ca");
  // A worker's certificate names the Service's DNS name, not the pod IP it is dialled by.
  serverDir = await writeInternalTlsDir(ca, join(root, "server"), {
    sans: ["DNS:worker.berth.svc", "IP:127.0.0.1"],
  });
  serverTransport = loadInternalTls({ dir: serverDir });
  server = new grpc.Server();
  new HealthImplementation({ "": "SERVING" }).addToServer(server);
  port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", serverTransport.serverCredentials, (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
});

after(async () => {
  server?.forceShutdown();
  serverTransport?.close();
  await rm(root, { recursive: true, force: true });
});

/** One health Check through `credentials`; resolves the status or rejects with the gRPC error. */
async function check(
  credentials: grpc.ChannelCredentials,
  options: grpc.ChannelOptions = {},
  target = `127.0.0.1:${port}`,
): Promise<string> {
  const client = new Health(target, credentials, options);
  try {
    return await new Promise<string>((resolve, reject) =>
      (client as unknown as Record<string, (...a: unknown[]) => void>).check?.(
        { service: "" },
        { deadline: Date.now() + 10_000 },
        (e: grpc.ServiceError | null, r: { status: string }) => (e ? reject(e) : resolve(r.status)),
      ),
    );
  } finally {
    client.close();
  }
}

async function refusal(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (e: unknown) {
    return e as grpc.ServiceError;
  }
  assert.fail("the call was expected to be refused");
}

describe("internal mutual TLS", () => {
  test("a client with a certificate from the same CA is served", async () => {
    const client = loadInternalTls({ dir: serverDir });
    try {
      assert.equal(await check(client.channelCredentials, client.channelOptions), "SERVING");
    } finally {
      client.close();
    }
  });

  test("the server name option makes a client check the certificate for that name", async () => {
    const dir = await writeInternalTlsDir(ca, join(root, "named-client"));
    const named = loadInternalTls({ dir, serverName: "worker.berth.svc" });
    try {
      // Dialled by "localhost", which the server's certificate does not name.
      assert.equal(
        await check(named.channelCredentials, named.channelOptions, `localhost:${port}`),
        "SERVING",
      );
    } finally {
      named.close();
    }
  });

  test("a client checking the wrong server name is refused, and told which name did not match", async () => {
    const client = loadInternalTls({ dir: serverDir, serverName: "gateway.berth.svc" });
    try {
      const e = await refusal(check(client.channelCredentials, client.channelOptions));
      assert.equal(e.code, grpc.status.UNAVAILABLE);
      assert.match(
        e.details,
        /Host: gateway\.berth\.svc\. is not in the cert's altnames: DNS:worker\.berth\.svc/,
      );
    } finally {
      client.close();
    }
  });

  test("a client without a certificate is refused", async () => {
    const noCert = grpc.credentials.createSsl(await readCa(ca));
    const e = await refusal(check(noCert));
    assert.equal(e.code, grpc.status.UNAVAILABLE);
    // TLS 1.3 checks the client's certificate after the client's handshake ends: the
    // server's alert usually reaches grpc-js as the connection's error, or the
    // connection just closes (grpc-js then says only "Failed to connect").
    assert.match(e.details, /alert certificate required|Failed to connect/);
  });

  test("a client with a certificate from another CA is refused", async () => {
    const leaf = await issueCertificate(otherCa, {
      dir: join(root, "other-client"),
      name: "client",
      subject: "/CN=intruder",
      usage: "client",
    });
    const creds = grpc.credentials.createSsl(
      await readCa(ca),
      await readFile(leaf.key),
      await readFile(leaf.cert),
    );
    const e = await refusal(check(creds));
    assert.equal(e.code, grpc.status.UNAVAILABLE);
    assert.match(e.details, /alert unknown ca|Failed to connect/);
  });

  test("a client that does not trust the server's CA is refused: the server's certificate is unknown", async () => {
    const dir = await writeInternalTlsDir(otherCa, join(root, "other-node"));
    const client = loadInternalTls({ dir });
    try {
      const e = await refusal(check(client.channelCredentials, client.channelOptions));
      assert.equal(e.code, grpc.status.UNAVAILABLE);
      assert.match(e.details, /self-signed certificate in certificate chain/);
    } finally {
      client.close();
    }
  });

  test("a plaintext client of a TLS server fails clearly", async () => {
    const e = await refusal(check(plaintextTransport().channelCredentials));
    assert.equal(e.code, grpc.status.UNAVAILABLE);
    assert.match(e.details, /Failed to connect/);
  });

  test("a TLS client of a plaintext server fails clearly", async () => {
    const plain = new grpc.Server();
    new HealthImplementation({ "": "SERVING" }).addToServer(plain);
    const plainPort = await new Promise<number>((resolve, reject) =>
      plain.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const client = loadInternalTls({ dir: serverDir });
    try {
      const e = await refusal(
        check(client.channelCredentials, client.channelOptions, `127.0.0.1:${plainPort}`),
      );
      assert.equal(e.code, grpc.status.UNAVAILABLE);
      assert.match(e.details, /wrong version number/);
    } finally {
      client.close();
      plain.forceShutdown();
    }
  });
});

describe("rotation", () => {
  test("after the Secret's files change, new connections use the new CA and certificate", async () => {
    const dir = await writeInternalTlsDir(ca, join(root, "rotating"), {
      sans: ["DNS:localhost", "IP:127.0.0.1"],
    });
    const rotating = loadInternalTls({ dir });
    const rotatingServer = new grpc.Server();
    new HealthImplementation({ "": "SERVING" }).addToServer(rotatingServer);
    const rotatingPort = await new Promise<number>((resolve, reject) =>
      rotatingServer.bindAsync("127.0.0.1:0", rotating.serverCredentials, (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const target = `127.0.0.1:${rotatingPort}`;
    const oldClient = loadInternalTls({ dir: serverDir });
    const newCaDir = await writeInternalTlsDir(otherCa, join(root, "new-ca-client"));
    const newClient = loadInternalTls({ dir: newCaDir });
    try {
      assert.equal(await check(oldClient.channelCredentials, {}, target), "SERVING");
      assert.equal(rotating.refresh(), false, "unchanged files are not a new set");
      // The Secret now holds a certificate from another CA (a CA rotation).
      for (const f of ["ca.crt", "tls.crt", "tls.key"]) {
        await copyFile(join(newCaDir, f), join(dir, f));
      }
      assert.equal(rotating.refresh(), true);
      assert.equal(await check(newClient.channelCredentials, {}, target), "SERVING");
      const e = await refusal(check(oldClient.channelCredentials, {}, target));
      assert.equal(e.code, grpc.status.UNAVAILABLE);
    } finally {
      oldClient.close();
      newClient.close();
      rotating.close();
      rotatingServer.forceShutdown();
    }
  });

  test("a half-written Secret is rejected and the certificates in use are kept", async () => {
    const dir = await writeInternalTlsDir(ca, join(root, "half-written"));
    const transport = loadInternalTls({ dir });
    try {
      await writeFile(join(dir, "tls.key"), "");
      assert.equal(transport.refresh(), false);
    } finally {
      transport.close();
    }
  });
});

describe("bad directories are refused with the file and the reason", () => {
  test("a missing file", () => {
    assert.throws(
      () => loadInternalTls({ dir: join(root, "nowhere") }),
      (e: unknown) =>
        e instanceof InternalTlsError &&
        e.message === `cannot read ${join(root, "nowhere", "ca.crt")}: ENOENT`,
    );
  });

  test("a key that is not the certificate's", async () => {
    const dir = await writeInternalTlsDir(ca, join(root, "mismatch"));
    const other = await writeInternalTlsDir(ca, join(root, "mismatch-other"));
    await copyFile(join(other, "tls.key"), join(dir, "tls.key"));
    assert.throws(
      () => readInternalTlsDir(dir),
      (e: unknown) =>
        e instanceof InternalTlsError &&
        e.message === `${join(dir, "tls.key")} is not the key of ${join(dir, "tls.crt")}`,
    );
  });

  test("a certificate another CA signed", async () => {
    const dir = await writeInternalTlsDir(otherCa, join(root, "wrong-ca"));
    await copyFile(ca.cert, join(dir, "ca.crt"));
    assert.throws(
      () => readInternalTlsDir(dir),
      (e: unknown) =>
        e instanceof InternalTlsError &&
        e.message ===
          `${join(dir, "tls.crt")} (CN=berth-node) is not signed by ${join(dir, "ca.crt")}`,
    );
  });

  test("a file that is not PEM", async () => {
    const dir = await writeInternalTlsDir(ca, join(root, "not-pem"));
    await writeFile(join(dir, "tls.crt"), "hello");
    assert.throws(
      () => readInternalTlsDir(dir),
      (e: unknown) =>
        e instanceof InternalTlsError &&
        e.message === `${join(dir, "tls.crt")} holds no PEM certificate`,
    );
  });

  test("an expired certificate", async () => {
    const dir = await writeInternalTlsDir(ca, join(root, "expired"));
    assert.throws(
      () => readInternalTlsDir(dir, new Date(Date.now() + 400 * 86_400_000)),
      (e: unknown) => e instanceof InternalTlsError && /tls\.crt expired on /.test(e.message),
    );
  });

  test("a server name that is not a DNS name", () => {
    assert.throws(
      () => loadInternalTls({ dir: serverDir, serverName: "worker:7000" }),
      (e: unknown) =>
        e instanceof InternalTlsError &&
        e.message ===
          `the server name must be a DNS name (letters, digits, '-', '.'), got "worker:7000"`,
    );
  });
});

async function readCa(authority: CertificateAuthority): Promise<Buffer> {
  return readFile(authority.cert);
}
