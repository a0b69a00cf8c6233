// An inverted index of pool labels (key=value → pools), so a selector that names a label
// finds its few pools without scanning every pool. Member lists in pool-id order are made
// lazily, on the first read after a change. It holds little per pool: many label values
// (a date, an order id) label one pool each, so a value's pools are that one pool itself
// until there are two, and a key's pools (for `exists`) are only counted, then listed from
// its values when a query asks.
import type { LabelSelector } from "@berth/proto";

/** What the index needs of an entry: a stable id and its current labels. */
export interface Labelled {
  readonly id: string;
  readonly counters: { readonly labels: Readonly<Record<string, string>> };
}

/** The entries of one key=value: the only one, or a Set of two or more. */
type Members<T> = T | Set<T>;

function compareIds(a: Labelled, b: Labelled): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Entries by label. Call {@link add} with an entry's labels in place and
 * {@link remove} before they change (the index reads them from the entry).
 */
export class LabelIndex<T extends Labelled> {
  /** key → value → its entries. */
  readonly #byValue = new Map<string, Map<string, Members<T>>>();
  /** key → how many entries have it. */
  readonly #keyCount = new Map<string, number>();
  /** A Set's members in id order, as of its last change. */
  readonly #sortedSets = new WeakMap<Set<T>, readonly T[]>();
  /** key → its entries in id order, as of the key's last change (what `exists` reads). */
  readonly #sortedKeys = new Map<string, readonly T[]>();

  add(x: T): void {
    const labels = x.counters.labels;
    for (const key in labels) {
      const value = labels[key] as string;
      let values = this.#byValue.get(key);
      if (values === undefined) {
        values = new Map();
        this.#byValue.set(key, values);
      }
      const m = values.get(value);
      if (m === undefined) {
        values.set(value, x);
      } else if (m instanceof Set) {
        if (m.has(x)) continue;
        m.add(x);
        this.#sortedSets.delete(m);
      } else if (m === x) {
        continue;
      } else {
        values.set(value, new Set([m, x]));
      }
      this.#keyCount.set(key, (this.#keyCount.get(key) ?? 0) + 1);
      this.#sortedKeys.delete(key);
    }
  }

  remove(x: T): void {
    const labels = x.counters.labels;
    for (const key in labels) {
      const value = labels[key] as string;
      const values = this.#byValue.get(key);
      const m = values?.get(value);
      if (values === undefined || m === undefined) continue;
      if (m instanceof Set) {
        if (!m.delete(x)) continue;
        this.#sortedSets.delete(m);
        if (m.size === 1) values.set(value, m.values().next().value as T);
      } else if (m === x) {
        values.delete(value);
        if (values.size === 0) this.#byValue.delete(key);
      } else {
        continue;
      }
      const left = (this.#keyCount.get(key) ?? 1) - 1;
      if (left === 0) this.#keyCount.delete(key);
      else this.#keyCount.set(key, left);
      this.#sortedKeys.delete(key);
    }
  }

  /**
   * Writes into `labels`, for each value an entry of the index already has under the
   * same key, that entry's string (equal to it): entries decoded from messages then
   * hold one copy of each value, not one each. For labels nothing else holds.
   */
  shareValues(labels: Record<string, string>): void {
    for (const key in labels) {
      const m = this.#byValue.get(key)?.get(labels[key] as string);
      if (m === undefined) continue;
      const holder = m instanceof Set ? (m.values().next().value as T) : m;
      const held = holder.counters.labels[key];
      if (held !== undefined) labels[key] = held;
    }
  }

  /**
   * A superset of the entries `selector` can match, in id order, from its most
   * selective positive requirement (`=`, `in`, `exists`); undefined when it has none,
   * or when every candidate list is longer than `scanCost` (scanning is then cheaper).
   */
  candidates(selector: LabelSelector, scanCost: number): readonly T[] | undefined {
    let best:
      | { cost: number; lists: readonly Members<T>[] }
      | { cost: number; key: string }
      | undefined;
    for (const r of selector.requirements) {
      let candidate: { cost: number; lists: readonly Members<T>[] } | { cost: number; key: string };
      if (r.op === "=") {
        const m = this.#byValue.get(r.key)?.get(r.value);
        candidate = m === undefined ? { cost: 0, lists: [] } : { cost: sizeOf(m), lists: [m] };
      } else if (r.op === "in") {
        const values = this.#byValue.get(r.key);
        const lists: Members<T>[] = [];
        let cost = 0;
        for (const v of new Set(r.values)) {
          const m = values?.get(v);
          if (m === undefined) continue;
          lists.push(m);
          cost += sizeOf(m);
        }
        candidate = { cost, lists };
      } else if (r.op === "exists") {
        candidate = { cost: this.#keyCount.get(r.key) ?? 0, key: r.key };
      } else {
        continue;
      }
      if (candidate.cost === 0) return [];
      if (best === undefined || candidate.cost < best.cost) best = candidate;
    }
    if (best === undefined || best.cost > scanCost) return undefined;
    if ("key" in best) return this.#sortedKey(best.key);
    const lists = best.lists;
    if (lists.length === 1) return this.#sorted(lists[0] as Members<T>);
    // `in` over several values: their entries are disjoint (one value per key).
    const merged: T[] = [];
    for (const m of lists) pushMembers(merged, m);
    return merged.sort(compareIds);
  }

  #sorted(m: Members<T>): readonly T[] {
    if (!(m instanceof Set)) return [m];
    let sorted = this.#sortedSets.get(m);
    if (sorted === undefined) {
      sorted = [...m].sort(compareIds);
      this.#sortedSets.set(m, sorted);
    }
    return sorted;
  }

  #sortedKey(key: string): readonly T[] {
    let sorted = this.#sortedKeys.get(key);
    if (sorted === undefined) {
      const all: T[] = [];
      for (const m of this.#byValue.get(key)?.values() ?? []) pushMembers(all, m);
      sorted = all.sort(compareIds);
      this.#sortedKeys.set(key, sorted);
    }
    return sorted;
  }
}

function sizeOf<T>(m: Members<T>): number {
  return m instanceof Set ? m.size : 1;
}

function pushMembers<T>(out: T[], m: Members<T>): void {
  if (m instanceof Set) for (const x of m) out.push(x);
  else out.push(m);
}
