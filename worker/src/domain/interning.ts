// Canonical copies of values many pools hold alike (a delivery slot's window, a zone
// label's value), so that 100,000 pools with 1,000 windows keep 1,000 window objects.
//
// A bounded table, not a reference-counted one: pool states are persistent values
// (`evolve` returns a new state, and a caller may keep an old one), so no state knows
// when it is dropped and counts could never be exact. A table that only caches needs no
// counts: what it hands out is immutable and compared by value everywhere, so a value
// it has forgotten is merely no longer shared with values made later. It keeps at most
// 2 × `capacity` entries (two generations: an entry used within the last `capacity`
// insertions survives a turnover), whatever pools come and go. No answer of `decide` or
// `evolve` depends on what it holds, so the domain stays a pure function of its inputs.

/** A bounded table of canonical values by key; see the module comment. */
export class BoundedInterner<V> {
  readonly #capacity: number;
  #current = new Map<string, V>();
  #previous = new Map<string, V>();

  /** @param capacity entries per generation (at most twice this are kept) */
  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`interner capacity must be a positive integer, got ${capacity}`);
    }
    this.#capacity = capacity;
  }

  /**
   * The value kept for `key`; `value` (which must equal what `key` names) when there
   * is none, which is then kept.
   */
  intern(key: string, value: V): V {
    const current = this.#current.get(key);
    if (current !== undefined) return current;
    const kept = this.#previous.get(key) ?? value;
    if (this.#current.size >= this.#capacity) {
      this.#previous = this.#current;
      this.#current = new Map();
    }
    this.#current.set(key, kept);
    return kept;
  }

  /** Entries kept (both generations; a key may be in both). */
  get size(): number {
    return this.#current.size + this.#previous.size;
  }
}
