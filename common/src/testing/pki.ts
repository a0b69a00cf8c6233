// Test certificates made with the openssl CLI: a CA, and leaf certificates it signs,
// written as files. For tests and harnesses only (`@berth/common/testing`).
import { execFile } from "node:child_process";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { INTERNAL_TLS_FILES } from "../internal-tls.js";

const execFileAsync = promisify(execFile);

/** Thrown when the openssl CLI is missing or one of its commands fails; the message says which. */
export class OpensslError extends Error {
  override readonly name = "OpensslError";
}

/** Runs `openssl ARGS` in `cwd`. @throws OpensslError */
export async function openssl(args: readonly string[], cwd: string): Promise<void> {
  try {
    await execFileAsync("openssl", args, { cwd, encoding: "utf8" });
  } catch (e: unknown) {
    const x = e as NodeJS.ErrnoException & { stderr?: string };
    throw new OpensslError(
      x.code === "ENOENT"
        ? "the openssl CLI is not on PATH (Debian: apt-get install openssl); test certificates are made with it"
        : `openssl ${args[0]} failed: ${(x.stderr ?? x.message).trim()}`,
    );
  }
}

/** A CA's certificate and key files. */
export interface CertificateAuthority {
  readonly cert: string;
  readonly key: string;
}

/** A leaf certificate's files. */
export interface IssuedCertificate {
  readonly cert: string;
  readonly key: string;
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** Makes a self-signed CA (EC P-256, 10 years) as DIR/NAME.crt and DIR/NAME.key. */
export async function createCertificateAuthority(
  dir: string,
  name = "ca",
  commonName = "berth-test-ca",
): Promise<CertificateAuthority> {
  await mkdir(dir, { recursive: true });
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await openssl(
    [
      "req",
      "-x509",
      ...EC_KEY,
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "3650",
      "-subj",
      `/CN=${commonName}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ],
    dir,
  );
  return { cert, key };
}

/** What a leaf certificate is for: its extended key usages. */
export type CertificateUsage = "server" | "client" | "server-and-client";

/** An openssl `-extfile` for a leaf certificate. */
export function leafExtensions(usage: CertificateUsage, sans: readonly string[] = []): string {
  const eku = {
    server: "serverAuth",
    client: "clientAuth",
    "server-and-client": "serverAuth,clientAuth",
  };
  return [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage=${eku[usage]}`,
    ...(sans.length ? [`subjectAltName=${sans.join(",")}`] : []),
    "",
  ].join("\n");
}

/** Options of {@link issueCertificate}. */
export interface IssueOptions {
  /** Directory of the files, DIR/NAME.crt and DIR/NAME.key. */
  readonly dir: string;
  readonly name: string;
  /** openssl `-subj`, e.g. "/CN=worker". */
  readonly subject: string;
  readonly usage: CertificateUsage;
  /** subjectAltName entries, e.g. "DNS:worker.berth.svc", "IP:127.0.0.1". */
  readonly sans?: readonly string[];
  /** Validity in days; default 365. */
  readonly days?: number;
}

/** Makes a key (EC P-256) and a certificate for it signed by `ca`. */
export async function issueCertificate(
  ca: CertificateAuthority,
  o: IssueOptions,
): Promise<IssuedCertificate> {
  await mkdir(o.dir, { recursive: true });
  const p = (suffix: string): string => join(o.dir, `${o.name}${suffix}`);
  await writeFile(p(".ext"), leafExtensions(o.usage, o.sans));
  await openssl(
    ["req", "-new", ...EC_KEY, "-keyout", p(".key"), "-out", p(".csr"), "-subj", o.subject],
    o.dir,
  );
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      p(".csr"),
      "-CA",
      ca.cert,
      "-CAkey",
      ca.key,
      "-set_serial",
      `0x${randomSerial()}`,
      "-days",
      String(o.days ?? 365),
      "-sha256",
      "-extfile",
      p(".ext"),
      "-out",
      p(".crt"),
    ],
    o.dir,
  );
  return { cert: p(".crt"), key: p(".key") };
}

/**
 * Writes an internal TLS directory (ca.crt, tls.crt, tls.key, as a kubernetes.io/tls
 * Secret with a CA is mounted) for one node: a certificate for both server and client
 * use, signed by `ca`, naming `sans` (default: DNS:localhost and IP:127.0.0.1).
 */
export async function writeInternalTlsDir(
  ca: CertificateAuthority,
  dir: string,
  options: { readonly sans?: readonly string[]; readonly subject?: string } = {},
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const leaf = await issueCertificate(ca, {
    dir,
    name: "leaf",
    subject: options.subject ?? "/CN=berth-node",
    usage: "server-and-client",
    sans: options.sans ?? ["DNS:localhost", "IP:127.0.0.1"],
  });
  await copyFile(ca.cert, join(dir, INTERNAL_TLS_FILES.ca));
  await copyFile(leaf.cert, join(dir, INTERNAL_TLS_FILES.cert));
  await copyFile(leaf.key, join(dir, INTERNAL_TLS_FILES.key));
  return dir;
}

function randomSerial(): string {
  // Positive 63-bit serial; openssl needs unique serials per CA, not secrecy.
  return (BigInt(Date.now()) * 1_000_003n + BigInt(Math.floor(Math.random() * 1e6))).toString(16);
}
