// An inverted index of pool labels (key=value → pools, key → pools), so a selector
// that names a label finds its few pools without scanning every pool. Each posting
// keeps its members in pool-id order, sorted lazily on the first read after a change.
import type { LabelSelector } from "@berth/proto";

/** What the index needs of an entry: a stable id and its current labels. */
export interface Labelled {
  readonly id: string;
  readonly counters: { readonly labels: Readonly<Record<string, string>> };
}

class Posting<T extends Labelled> {
  /**
   * The only member, or a Set once there are two: many label values (a date, an
   * order id) label one pool each, and a Set per pool would be most of the index.
   */
  #members: T | Set<T>;
  #sorted: T[] | undefined;

  constructor(first: T) {
    this.#members = first;
  }

  get size(): number {
    const m = this.#members;
    return m instanceof Set ? m.size : 1;
  }

  add(x: T): void {
    const m = this.#members;
    if (m instanceof Set) m.add(x);
    else if (m !== x) this.#members = new Set([m, x]);
    this.#sorted = undefined;
  }

  /** Removes `x`; false when the posting is left empty (its owner drops it). */
  delete(x: T): boolean {
    const m = this.#members;
    this.#sorted = undefined;
    if (!(m instanceof Set)) return m !== x;
    m.delete(x);
    if (m.size === 1) this.#members = m.values().next().value as T;
    return true;
  }

  /** Members in ascending code-unit order of id. */
  sorted(): readonly T[] {
    const m = this.#members;
    if (!(m instanceof Set)) return [m];
    this.#sorted ??= [...m].sort(compareIds);
    return this.#sorted;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    const m = this.#members;
    if (m instanceof Set) yield* m;
    else yield m;
  }
}

function compareIds(a: Labelled, b: Labelled): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Entries by label. Call {@link add} with an entry's labels in place and
 * {@link remove} before they change (the index reads them from the entry).
 */
export class LabelIndex<T extends Labelled> {
  readonly #byValue = new Map<string, Map<string, Posting<T>>>();
  readonly #byKey = new Map<string, Posting<T>>();

  add(x: T): void {
    const labels = x.counters.labels;
    for (const key in labels) {
      const value = labels[key] as string;
      let values = this.#byValue.get(key);
      if (values === undefined) {
        values = new Map();
        this.#byValue.set(key, values);
      }
      const p = values.get(value);
      if (p === undefined) values.set(value, new Posting(x));
      else p.add(x);
      const k = this.#byKey.get(key);
      if (k === undefined) this.#byKey.set(key, new Posting(x));
      else k.add(x);
    }
  }

  remove(x: T): void {
    const labels = x.counters.labels;
    for (const key in labels) {
      const values = this.#byValue.get(key);
      const p = values?.get(labels[key] as string);
      if (values !== undefined && p !== undefined && !p.delete(x)) {
        values.delete(labels[key] as string);
        if (values.size === 0) this.#byValue.delete(key);
      }
      const k = this.#byKey.get(key);
      if (k !== undefined && !k.delete(x)) this.#byKey.delete(key);
    }
  }

  /**
   * A superset of the entries `selector` can match, in id order, from its most
   * selective positive requirement (`=`, `in`, `exists`); undefined when it has none,
   * or when every candidate list is longer than `scanCost` (scanning is then cheaper).
   */
  candidates(selector: LabelSelector, scanCost: number): readonly T[] | undefined {
    let best: { cost: number; lists: readonly (readonly T[] | Posting<T>)[] } | undefined;
    for (const r of selector.requirements) {
      let lists: Posting<T>[];
      if (r.op === "=") {
        const p = this.#byValue.get(r.key)?.get(r.value);
        lists = p === undefined ? [] : [p];
      } else if (r.op === "in") {
        const values = this.#byValue.get(r.key);
        lists = [];
        for (const v of new Set(r.values)) {
          const p = values?.get(v);
          if (p !== undefined) lists.push(p);
        }
      } else if (r.op === "exists") {
        const p = this.#byKey.get(r.key);
        lists = p === undefined ? [] : [p];
      } else {
        continue;
      }
      let cost = 0;
      for (const p of lists) cost += p.size;
      if (best === undefined || cost < best.cost) best = { cost, lists };
      if (cost === 0) return [];
    }
    if (best === undefined || best.cost > scanCost) return undefined;
    const lists = best.lists as Posting<T>[];
    if (lists.length === 1) return (lists[0] as Posting<T>).sorted();
    // `in` over several values: their postings are disjoint (one value per key).
    const merged: T[] = [];
    for (const p of lists) for (const x of p) merged.push(x);
    return merged.sort(compareIds);
  }
}
