/**
 * Pool ids: `<namespace>/<name>` of the pool's CapacityPool resource, validated
 * with the same rules Kubernetes applies to those two parts.
 */

/** Longest namespace: an RFC 1123 DNS label. */
export const MAX_NAMESPACE_LENGTH = 63;
/** Longest name: an RFC 1123 DNS subdomain. */
export const MAX_NAME_LENGTH = 253;
/** Longest pool id: namespace, "/", name. */
export const MAX_POOL_ID_LENGTH = MAX_NAMESPACE_LENGTH + 1 + MAX_NAME_LENGTH;

/** Longest prefix of a bad id quoted in a message, so messages stay bounded. */
const QUOTE_LIMIT = 80;

/** Quotes untrusted text for a message: JSON-escaped and bounded in length. */
function quote(text: string): string {
  return text.length > QUOTE_LIMIT
    ? `${JSON.stringify(text.slice(0, QUOTE_LIMIT))}… (${text.length} characters)`
    : JSON.stringify(text);
}

function isAlphanumeric(c: string): boolean {
  return (c >= "a" && c <= "z") || (c >= "0" && c <= "9");
}

/** The first problem of one RFC 1123 label (a namespace, or one dot-separated part of a name). */
function labelProblem(
  what: string,
  whole: string,
  label: string,
  offset: number,
): string | undefined {
  for (let i = 0; i < label.length; i++) {
    const c = label[i] as string;
    if (!isAlphanumeric(c) && c !== "-") {
      const allowed =
        what === "namespace"
          ? 'lowercase letters a-z, digits 0-9 and "-"'
          : 'lowercase letters a-z, digits 0-9, "-" and "."';
      return `${what} ${quote(whole)} has ${JSON.stringify(c)} at index ${offset + i}; only ${allowed} are allowed`;
    }
  }
  const part = what === "namespace" ? what : `each "."-separated part of a ${what}`;
  if (!isAlphanumeric(label[0] as string)) {
    return `${what} ${quote(whole)} has "-" at index ${offset}; ${part} must start with a lowercase letter or digit`;
  }
  if (!isAlphanumeric(label[label.length - 1] as string)) {
    return `${what} ${quote(whole)} has "-" at index ${offset + label.length - 1}; ${part} must end with a lowercase letter or digit`;
  }
  return undefined;
}

function namespaceProblem(namespace: string): string | undefined {
  if (namespace === "") return 'namespace is empty; expected "<namespace>/<name>"';
  if (namespace.length > MAX_NAMESPACE_LENGTH) {
    return `namespace ${quote(namespace)} is ${namespace.length} characters long; the maximum is ${MAX_NAMESPACE_LENGTH} (an RFC 1123 label)`;
  }
  return labelProblem("namespace", namespace, namespace, 0);
}

function nameProblem(name: string): string | undefined {
  if (name === "") return 'name is empty; expected "<namespace>/<name>"';
  if (name.length > MAX_NAME_LENGTH) {
    return `name ${quote(name)} is ${name.length} characters long; the maximum is ${MAX_NAME_LENGTH} (an RFC 1123 subdomain)`;
  }
  let offset = 0;
  for (const label of name.split(".")) {
    if (label === "") {
      return `name ${quote(name)} has an empty "."-separated part at index ${offset}; "." may not start or end a name or repeat`;
    }
    const problem = labelProblem("name", name, label, offset);
    if (problem !== undefined) return problem;
    offset += label.length + 1;
  }
  return undefined;
}

/**
 * Validates a pool id: `<namespace>/<name>` where the namespace is an RFC 1123
 * label (lowercase alphanumerics and "-", starting and ending alphanumeric, at most
 * 63 characters) and the name an RFC 1123 subdomain (such labels joined by ".", at
 * most 253 characters) — exactly the names Kubernetes allows for a namespaced
 * resource.
 *
 * @param id the candidate pool id (any value is accepted; non-strings are a problem)
 * @returns undefined when valid, else one precise, human-readable message naming
 *   the part that is wrong and why (it quotes at most 80 characters of the input)
 */
export function poolIdProblem(id: string): string | undefined {
  if (typeof id !== "string") return `pool id must be a string, got ${typeof id}`;
  if (id === "") return 'pool id is empty; expected "<namespace>/<name>"';
  if (id.length > MAX_POOL_ID_LENGTH) {
    return `pool id ${quote(id)} is ${id.length} characters long; the maximum is ${MAX_POOL_ID_LENGTH}`;
  }
  const slash = id.indexOf("/");
  if (slash < 0) return `pool id ${quote(id)} has no "/"; expected "<namespace>/<name>"`;
  const second = id.indexOf("/", slash + 1);
  if (second >= 0) {
    return `pool id ${quote(id)} has a second "/" at index ${second}; expected exactly one, between namespace and name`;
  }
  const namespace = id.slice(0, slash);
  const name = id.slice(slash + 1);
  return namespaceProblem(namespace) ?? nameProblem(name);
}

/**
 * Thrown when a string that must be a pool id is not one; `reason` is the message
 * {@link poolIdProblem} gave.
 */
export class InvalidPoolIdError extends Error {
  override readonly name = "InvalidPoolIdError";

  /**
   * @param id the rejected input
   * @param reason why it is not a pool id
   */
  constructor(
    readonly id: string,
    readonly reason: string,
  ) {
    super(`invalid pool id: ${reason}`);
  }
}

/**
 * Throws {@link InvalidPoolIdError} unless `id` is a valid pool id.
 *
 * @param id the candidate pool id
 */
export function assertPoolId(id: string): void {
  const problem = poolIdProblem(id);
  if (problem !== undefined) throw new InvalidPoolIdError(id, problem);
}

/**
 * Splits a valid pool id into its namespace and name.
 *
 * @param id a pool id `<namespace>/<name>`
 * @returns its two parts
 * @throws InvalidPoolIdError when `id` is not a valid pool id
 */
export function splitPoolId(id: string): { namespace: string; name: string } {
  assertPoolId(id);
  const slash = id.indexOf("/");
  return { namespace: id.slice(0, slash), name: id.slice(slash + 1) };
}
