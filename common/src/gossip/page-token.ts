// Opaque page tokens for GetAvailability and Pull: base64url of the last pool id returned.

/** Longest pool id ("<namespace>/<name>": 63 + 1 + 253 characters, ASCII). */
const MAX_TOKEN_POOL_ID_BYTES = 317;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Thrown when a page token was not produced by this service (malformed, truncated or edited). */
export class InvalidPageTokenError extends Error {
  override readonly name = "InvalidPageTokenError";
  /** The token as received. */
  readonly token: string;
  /** What is wrong with it, without the token itself. */
  readonly reason: string;

  constructor(token: string, reason: string) {
    const shown = token.length > 64 ? `${token.slice(0, 64)}…` : token;
    super(
      `invalid page token "${shown}": ${reason}; pass the next_page_token of a previous response unchanged`,
    );
    this.token = token;
    this.reason = reason;
  }
}

/** Encodes the last pool id of a page as an opaque, URL-safe page token. */
export function encodePageToken(lastPoolId: string): string {
  return Buffer.from(lastPoolId, "utf8").toString("base64url");
}

/**
 * Decodes a page token into the pool id after which the next page starts.
 * Throws {@link InvalidPageTokenError} unless `token` is exactly what
 * {@link encodePageToken} returns for some pool id.
 */
export function decodePageToken(token: string): string {
  if (token.length === 0) throw new InvalidPageTokenError(token, "it is empty");
  if (token.length > Math.ceil((MAX_TOKEN_POOL_ID_BYTES * 4) / 3)) {
    throw new InvalidPageTokenError(
      token,
      `it is ${token.length} characters long, longer than any token`,
    );
  }
  if (!BASE64URL.test(token)) {
    throw new InvalidPageTokenError(token, "it contains characters outside the base64url alphabet");
  }
  const bytes = Buffer.from(token, "base64url");
  // Rejects non-canonical encodings (a stray trailing character, unused bits set).
  if (bytes.toString("base64url") !== token) {
    throw new InvalidPageTokenError(token, "it is not canonical base64url");
  }
  let id: string;
  try {
    id = STRICT_UTF8.decode(bytes);
  } catch {
    throw new InvalidPageTokenError(token, "it does not decode to UTF-8 text");
  }
  if (!id.includes("/")) {
    throw new InvalidPageTokenError(token, "it does not decode to a pool id");
  }
  return id;
}
