/**
 * Kubernetes label selectors (the `-l` syntax of kubectl), parsed and matched
 * without IO. Grammar, as in k8s.io/apimachinery `labels.Parse`:
 *
 * ```
 * selector    := "" | requirement ("," requirement)*
 * requirement := key | "!" key | key ("=" | "==" | "!=") value
 *              | key ("in" | "notin") "(" value ("," value)* ")"
 * ```
 *
 * Whitespace is allowed around every token. Values may be empty (`k=`, `k in (a,)`).
 * The `>`/`<` (gt/lt) operators of apimachinery are not supported.
 */

/** Longest selector text accepted, in characters. */
export const MAX_LABEL_SELECTOR_LENGTH = 1024;

/** One clause of a selector; a selector matches when every clause does. */
export type LabelRequirement =
  | { readonly op: "=" | "!="; readonly key: string; readonly value: string }
  /** `values` is sorted, without duplicates, never empty. */
  | { readonly op: "in" | "notin"; readonly key: string; readonly values: readonly string[] }
  | { readonly op: "exists" | "!exists"; readonly key: string };

/** A parsed selector. No requirements: matches every label set. */
export interface LabelSelector {
  readonly requirements: readonly LabelRequirement[];
}

/** Thrown when a label selector's text is not valid selector syntax. */
export class LabelSelectorSyntaxError extends Error {
  override readonly name = "LabelSelectorSyntaxError";
  /**
   * @param selector the full selector text
   * @param position 0-based character offset of the problem in `selector`
   * @param problem what is wrong there
   */
  constructor(
    readonly selector: string,
    readonly position: number,
    readonly problem: string,
  ) {
    super(`invalid label selector ${excerpt(selector)} at position ${position}: ${problem}`);
  }
}

const MAX_NAME_LENGTH = 63;
const MAX_PREFIX_LENGTH = 253;
const NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Checks a label key: an optional DNS-1123 subdomain prefix (≤253) and "/", then a
 * name of ≤63 characters from [A-Za-z0-9_.-] that starts and ends alphanumeric.
 * @returns undefined when valid, else why not
 */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0) return `label key ${JSON.stringify(key)} has an empty prefix`;
    if (prefix.length > MAX_PREFIX_LENGTH) {
      return `label key prefix is ${prefix.length} characters; at most ${MAX_PREFIX_LENGTH} allowed`;
    }
    if (!DNS_SUBDOMAIN.test(prefix)) {
      return `label key prefix ${JSON.stringify(prefix)} is not a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.', starting and ending alphanumeric)`;
    }
  }
  if (name.length === 0) return `label key ${JSON.stringify(key)} has an empty name`;
  if (name.length > MAX_NAME_LENGTH) {
    return `label key name is ${name.length} characters; at most ${MAX_NAME_LENGTH} allowed`;
  }
  if (!NAME.test(name)) {
    return `label key name ${JSON.stringify(name)} must consist of alphanumerics, '-', '_' or '.', starting and ending alphanumeric`;
  }
  return undefined;
}

/**
 * Checks a label value: empty, or ≤63 characters from [A-Za-z0-9_.-] starting and
 * ending alphanumeric.
 * @returns undefined when valid, else why not
 */
export function labelValueProblem(value: string): string | undefined {
  if (value.length === 0) return undefined;
  if (value.length > MAX_NAME_LENGTH) {
    return `label value is ${value.length} characters; at most ${MAX_NAME_LENGTH} allowed`;
  }
  if (!NAME.test(value)) {
    return `label value ${JSON.stringify(value)} must consist of alphanumerics, '-', '_' or '.', starting and ending alphanumeric`;
  }
  return undefined;
}

type Token =
  | { readonly kind: "id"; readonly text: string; readonly pos: number }
  | {
      readonly kind: "!" | "=" | "==" | "!=" | "(" | ")" | "," | "end";
      readonly text: string;
      readonly pos: number;
    };

const SPECIAL = new Set(["!", "=", "(", ")", ",", "<", ">"]);

function isSpace(c: string): boolean {
  return c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f" || c === "\v";
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    const pos = i;
    if (c === "=" || c === "!") {
      const two = text.charAt(i + 1) === "=";
      const kind = c === "=" ? (two ? "==" : "=") : two ? "!=" : "!";
      tokens.push({ kind, text: kind, pos });
      i += two ? 2 : 1;
    } else if (c === "(" || c === ")" || c === ",") {
      tokens.push({ kind: c, text: c, pos });
      i++;
    } else if (c === "<" || c === ">") {
      throw new LabelSelectorSyntaxError(text, pos, `operator '${c}' is not supported`);
    } else {
      while (i < text.length && !isSpace(text.charAt(i)) && !SPECIAL.has(text.charAt(i))) i++;
      tokens.push({ kind: "id", text: text.slice(pos, i), pos });
    }
  }
  tokens.push({ kind: "end", text: "end of selector", pos: text.length });
  return tokens;
}

function describe(t: Token): string {
  return t.kind === "end" ? "end of selector" : `'${t.text}'`;
}

/**
 * Parses a Kubernetes label selector. The empty (or all-whitespace) selector
 * matches everything. `k==v` parses as `k=v`; set values are sorted and deduplicated.
 * @throws LabelSelectorSyntaxError with the offending position
 */
export function parseLabelSelector(text: string): LabelSelector {
  if (text.length > MAX_LABEL_SELECTOR_LENGTH) {
    throw new LabelSelectorSyntaxError(
      text,
      MAX_LABEL_SELECTOR_LENGTH,
      `selector is ${text.length} characters; at most ${MAX_LABEL_SELECTOR_LENGTH} allowed`,
    );
  }
  const tokens = tokenize(text);
  let at = 0;
  const peek = (): Token => tokens[at] as Token;
  const next = (): Token => tokens[at++] as Token;
  const fail = (t: Token, problem: string): never => {
    throw new LabelSelectorSyntaxError(text, t.pos, problem);
  };

  const key = (): string => {
    const t = next();
    if (t.kind !== "id") return fail(t, `expected a label key, found ${describe(t)}`);
    const problem = labelKeyProblem(t.text);
    return problem === undefined ? t.text : fail(t, problem);
  };
  // A value may be empty: then the next token is whatever follows the operator.
  const value = (): string => {
    const t = peek();
    if (t.kind !== "id") return "";
    at++;
    const problem = labelValueProblem(t.text);
    return problem === undefined ? t.text : fail(t, problem);
  };
  const valueSet = (): string[] => {
    const open = next();
    if (open.kind !== "(") return fail(open, `expected '(', found ${describe(open)}`);
    if (peek().kind === ")") return fail(peek(), "a set of values must not be empty");
    const values = new Set<string>();
    for (;;) {
      values.add(value());
      const t = next();
      if (t.kind === ")") break;
      if (t.kind !== ",") fail(t, `expected ',' or ')', found ${describe(t)}`);
    }
    return [...values].sort();
  };

  const requirements: LabelRequirement[] = [];
  if (peek().kind === "end") return { requirements };
  for (;;) {
    if (peek().kind === "!") {
      at++;
      requirements.push({ op: "!exists", key: key() });
    } else {
      const k = key();
      const op = peek();
      if (op.kind === "=" || op.kind === "==" || op.kind === "!=") {
        at++;
        requirements.push({ op: op.kind === "!=" ? "!=" : "=", key: k, value: value() });
      } else if (op.kind === "id" && (op.text === "in" || op.text === "notin")) {
        at++;
        requirements.push({ op: op.text, key: k, values: valueSet() });
      } else if (op.kind === "," || op.kind === "end") {
        requirements.push({ op: "exists", key: k });
      } else {
        fail(
          op,
          `expected '=', '==', '!=', 'in', 'notin', ',' or end of selector, found ${describe(op)}`,
        );
      }
    }
    const sep = next();
    if (sep.kind === "end") return { requirements };
    if (sep.kind !== ",") fail(sep, `expected ',' or end of selector, found ${describe(sep)}`);
    if (peek().kind === "end") fail(peek(), "expected a requirement after ','");
  }
}

/**
 * Formats a selector in canonical text form (no spaces, sets sorted), which
 * `parseLabelSelector` reads back to an equal selector.
 */
export function formatLabelSelector(selector: LabelSelector): string {
  return selector.requirements
    .map((r) => {
      switch (r.op) {
        case "=":
        case "!=":
          return `${r.key}${r.op}${r.value}`;
        case "in":
        case "notin": {
          const values = [...new Set(r.values)].sort();
          // "(,)" is the only spelling of the set holding just the empty value.
          const list = values.length === 1 && values[0] === "" ? "," : values.join(",");
          return `${r.key} ${r.op} (${list})`;
        }
        case "exists":
          return r.key;
        case "!exists":
          return `!${r.key}`;
      }
      return assertNever(r);
    })
    .join(",");
}

/** Whether a label set satisfies every requirement of the selector. */
export function matchesLabels(
  selector: LabelSelector,
  labels: Readonly<Record<string, string>>,
): boolean {
  return selector.requirements.every((r) => {
    // Object.hasOwn: a key like "constructor" must not hit Object.prototype.
    const has = Object.hasOwn(labels, r.key);
    const v = has ? labels[r.key] : undefined;
    switch (r.op) {
      case "=":
        return has && v === r.value;
      case "!=":
        return !has || v !== r.value;
      case "in":
        return has && r.values.includes(v as string);
      case "notin":
        return !has || !r.values.includes(v as string);
      case "exists":
        return has;
      case "!exists":
        return !has;
    }
    return assertNever(r);
  });
}

function assertNever(x: never): never {
  throw new Error(`unexpected label requirement ${JSON.stringify(x)}`);
}

function excerpt(s: string): string {
  return JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s);
}
