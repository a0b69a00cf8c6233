// How Berth processes serve and dial berth.internal.v1 (WorkerService,
// WorkerControlService, GossipService): plaintext, or mutual TLS with certificates from a
// directory laid out like a kubernetes.io/tls Secret with a CA (ca.crt, tls.crt, tls.key,
// as cert-manager writes it). The one place where internal channel and server
// credentials are made.
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type ChannelCredentials,
  type ChannelOptions,
  credentials,
  experimental,
  ServerCredentials,
} from "@grpc/grpc-js";
import type { Logger } from "pino";

/** The files an internal TLS directory holds. */
export const INTERNAL_TLS_FILES = {
  ca: "ca.crt",
  cert: "tls.crt",
  key: "tls.key",
} as const;

/** How often the files are re-read for a rotated Secret, by default. */
export const DEFAULT_TLS_REFRESH_INTERVAL_MS = 10_000;

/**
 * Thrown when an internal TLS directory cannot be used: a file is missing or unreadable,
 * is not PEM, the key does not belong to the certificate, the certificate is not signed
 * by the CA, or it is expired. The message names the file and the reason.
 */
export class InternalTlsError extends Error {
  override readonly name = "InternalTlsError";
  constructor(
    message: string,
    /** The directory that was read. */
    readonly dir: string,
  ) {
    super(message);
  }
}

/**
 * The credentials of every internal gRPC server and client of one process. Plaintext
 * ({@link plaintextTransport}) or mutual TLS ({@link loadInternalTls}).
 */
export interface InternalTransport {
  /** For `server.bindAsync` of a server of internal services. */
  readonly serverCredentials: ServerCredentials;
  /** For every client of an internal service. */
  readonly channelCredentials: ChannelCredentials;
  /** Channel options to merge into every such client's (the server name to verify). */
  readonly channelOptions: ChannelOptions;
  /**
   * Re-reads the files now (they are also re-read every refresh interval). A new valid
   * set is used by new connections; an invalid one is logged and the current set kept.
   * @returns true when a new set was taken
   */
  refresh(): boolean;
  /** Stops re-reading the files. Idempotent. */
  close(): void;
}

/** What `--internal-tls-dir` and `--internal-tls-server-name` ask for. */
export interface InternalTlsFlags {
  readonly dir: string;
  readonly serverName?: string;
}

/** The --help lines of the two internal TLS flags, the same in every process. */
export const INTERNAL_TLS_USAGE = `  --internal-tls-dir DIR
                    mutual TLS on every internal gRPC connection (WorkerService,
                    WorkerControlService, GossipService): DIR holds ca.crt, tls.crt, tls.key
                    (a kubernetes.io/tls Secret with a CA, as cert-manager writes it).
                    Servers require a client certificate signed by ca.crt; clients present
                    tls.crt. The files are re-read every 10 s: a rotated Secret needs no
                    restart. Default: plaintext
  --internal-tls-server-name NAME
                    the name clients check on a worker's (or gateway gossip port's)
                    certificate (workers are dialled by pod IP). Default: the host part of
                    the address dialled`;

/**
 * Checks the two internal TLS flags' values.
 * @returns the flags, undefined when TLS is not asked for, or a string saying what is wrong
 */
export function parseInternalTlsFlags(
  dir: string | undefined,
  serverName: string | undefined,
): InternalTlsFlags | undefined | string {
  if (dir === undefined) {
    return serverName === undefined
      ? undefined
      : "--internal-tls-server-name needs --internal-tls-dir";
  }
  if (dir === "") return "--internal-tls-dir must not be empty";
  if (serverName === undefined) return { dir };
  if (!SERVER_NAME.test(serverName)) {
    return `--internal-tls-server-name must be a DNS name (letters, digits, '-', '.'), got ${JSON.stringify(serverName)}`;
  }
  return { dir, serverName };
}

/** No TLS: what internal servers and clients use without `--internal-tls-dir`. */
export function plaintextTransport(): InternalTransport {
  return {
    serverCredentials: ServerCredentials.createInsecure(),
    channelCredentials: credentials.createInsecure(),
    channelOptions: {},
    refresh: () => false,
    close: () => {},
  };
}

/** Options of {@link loadInternalTls}. */
export interface InternalTlsOptions {
  /** The directory holding ca.crt, tls.crt and tls.key. */
  readonly dir: string;
  /**
   * The name clients check the server's certificate for (workers are dialled by pod IP,
   * so their certificates name a DNS name instead). Default: the host part of the
   * address dialled.
   */
  readonly serverName?: string;
  /** How often the files are re-read; default {@link DEFAULT_TLS_REFRESH_INTERVAL_MS}. */
  readonly refreshIntervalMs?: number;
  /** Where rotations and rejected file sets are logged. */
  readonly logger?: Logger;
}

/**
 * Loads the internal TLS directory: servers then require a client certificate signed
 * by ca.crt, and clients present tls.crt and check the server's against ca.crt. The
 * files are checked now, and re-read every refresh interval so a rotated Secret is
 * used by new connections without a restart.
 *
 * @throws InternalTlsError naming the file that is wrong and why
 */
export function loadInternalTls(options: InternalTlsOptions): InternalTransport {
  if (options.serverName !== undefined && !SERVER_NAME.test(options.serverName)) {
    throw new InternalTlsError(
      `the server name must be a DNS name (letters, digits, '-', '.'), got ${JSON.stringify(options.serverName)}`,
      options.dir,
    );
  }
  const provider = new DirectoryCertificateProvider(
    options.dir,
    options.refreshIntervalMs ?? DEFAULT_TLS_REFRESH_INTERVAL_MS,
    options.logger,
  );
  return {
    // grpc-js names these parameters (ca, identity) but passes them on swapped; one
    // provider serves both, so the order does not matter here.
    serverCredentials: experimental.createCertificateProviderServerCredentials(
      provider,
      provider,
      true,
    ),
    channelCredentials: experimental.createCertificateProviderChannelCredentials(
      provider,
      provider,
      {},
    ),
    channelOptions:
      options.serverName === undefined
        ? {}
        : { "grpc.ssl_target_name_override": options.serverName },
    refresh: () => provider.refresh(),
    close: () => provider.close(),
  };
}

const SERVER_NAME =
  /^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$/;

/** The three files, read and checked. */
export interface CertificateSet {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly subject: string;
  readonly notAfter: string;
}

/**
 * Reads and checks the directory's files.
 * @throws InternalTlsError
 */
export function readInternalTlsDir(dir: string, now: Date = new Date()): CertificateSet {
  const fail = (message: string): never => {
    throw new InternalTlsError(message, dir);
  };
  const read = (file: string): Buffer => {
    try {
      return readFileSync(join(dir, file));
    } catch (e: unknown) {
      const err = e as NodeJS.ErrnoException;
      return fail(`cannot read ${join(dir, file)}: ${err.code ?? err.message}`);
    }
  };
  const ca = read(INTERNAL_TLS_FILES.ca);
  const cert = read(INTERNAL_TLS_FILES.cert);
  const key = read(INTERNAL_TLS_FILES.key);
  const certificates = (pem: Buffer, file: string): X509Certificate[] => {
    const blocks = pem.toString("utf8").match(PEM_CERTIFICATE) ?? [];
    if (blocks.length === 0) fail(`${join(dir, file)} holds no PEM certificate`);
    return blocks.map((block) => {
      try {
        return new X509Certificate(block);
      } catch (e: unknown) {
        return fail(`${join(dir, file)} holds an unreadable certificate: ${(e as Error).message}`);
      }
    });
  };
  const authorities = certificates(ca, INTERNAL_TLS_FILES.ca);
  const [leaf] = certificates(cert, INTERNAL_TLS_FILES.cert) as [X509Certificate];
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (e: unknown) {
    return fail(
      `${join(dir, INTERNAL_TLS_FILES.key)} is not a PEM private key (without a passphrase): ${(e as Error).message}`,
    );
  }
  const keyMatches =
    createPublicKey(privateKey).export({ format: "der", type: "spki" }).toString("base64") ===
    leaf.publicKey.export({ format: "der", type: "spki" }).toString("base64");
  if (!keyMatches) {
    fail(
      `${join(dir, INTERNAL_TLS_FILES.key)} is not the key of ${join(dir, INTERNAL_TLS_FILES.cert)}`,
    );
  }
  if (!authorities.some((a) => leaf.checkIssued(a) && leaf.verify(a.publicKey))) {
    fail(
      `${join(dir, INTERNAL_TLS_FILES.cert)} (${leaf.subject.replaceAll("\n", ", ")}) is not signed by ${join(dir, INTERNAL_TLS_FILES.ca)}`,
    );
  }
  if (new Date(leaf.validTo).getTime() <= now.getTime()) {
    fail(`${join(dir, INTERNAL_TLS_FILES.cert)} expired on ${leaf.validTo}`);
  }
  return { ca, cert, key, subject: leaf.subject.replaceAll("\n", ", "), notAfter: leaf.validTo };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;

/**
 * grpc-js's CertificateProvider for one directory: hands the checked files to every
 * channel and server, re-reads them periodically, and passes on only a set that checks.
 */
class DirectoryCertificateProvider implements experimental.CertificateProvider {
  readonly #dir: string;
  readonly #logger: Logger | undefined;
  #current: CertificateSet;
  #raw: string;
  #rejected = "";
  readonly #caListeners = new Set<experimental.CaCertificateUpdateListener>();
  readonly #identityListeners = new Set<experimental.IdentityCertificateUpdateListener>();
  #timer: NodeJS.Timeout | undefined;

  constructor(dir: string, refreshIntervalMs: number, logger: Logger | undefined) {
    this.#dir = dir;
    this.#logger = logger;
    this.#current = readInternalTlsDir(dir);
    this.#raw = fingerprint(this.#current);
    this.#timer = setInterval(() => this.refresh(), refreshIntervalMs);
    this.#timer.unref();
    logger?.info(
      { dir, subject: this.#current.subject, notAfter: this.#current.notAfter },
      "internal TLS certificates loaded",
    );
  }

  refresh(): boolean {
    let next: CertificateSet;
    try {
      next = readInternalTlsDir(this.#dir);
    } catch (e: unknown) {
      // A Secret being rewritten, or a bad one: keep serving with the set we have.
      const message = (e as Error).message;
      if (message !== this.#rejected) {
        this.#rejected = message;
        this.#logger?.warn(
          { dir: this.#dir, reason: message },
          "internal TLS files rejected; keeping the certificates in use",
        );
      }
      return false;
    }
    this.#rejected = "";
    const raw = fingerprint(next);
    if (raw === this.#raw) return false;
    this.#current = next;
    this.#raw = raw;
    this.#logger?.info(
      { dir: this.#dir, subject: next.subject, notAfter: next.notAfter },
      "internal TLS certificates reloaded; new connections use them",
    );
    for (const listener of this.#caListeners) listener({ caCertificate: next.ca });
    for (const listener of this.#identityListeners) {
      listener({ certificate: next.cert, privateKey: next.key });
    }
    return true;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  // grpc-js adds its listener before its own watchers: deliver on the next tick, as its
  // file watcher does, or the first update would reach nobody.
  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.#caListeners.add(listener);
    const ca = this.#current.ca;
    process.nextTick(() => {
      if (this.#caListeners.has(listener)) listener({ caCertificate: ca });
    });
  }

  removeCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.#caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.#identityListeners.add(listener);
    const { cert, key } = this.#current;
    process.nextTick(() => {
      if (this.#identityListeners.has(listener)) listener({ certificate: cert, privateKey: key });
    });
  }

  removeIdentityCertificateListener(
    listener: experimental.IdentityCertificateUpdateListener,
  ): void {
    this.#identityListeners.delete(listener);
  }
}

function fingerprint(set: CertificateSet): string {
  return `${set.ca.toString("base64")}|${set.cert.toString("base64")}|${set.key.toString("base64")}`;
}
