// The windows of a replica's entries, one object per distinct window: pools of one
// delivery slot have the same window, and a replica keeps every pool of the cluster
// (entries decoded from a peer's message each bring their own copy). Reference-counted,
// because the replica knows exactly when an entry stops holding one (a newer version
// replaces its counters): a window no entry holds is dropped, so the table holds no
// more windows than the entries do, whatever pools are reconfigured.
import type { internal } from "@berth/proto";
import { timestampMs } from "@berth/proto";

type TimeWindow = NonNullable<internal.PoolCounters["window"]>;
type Timestamp = NonNullable<TimeWindow["start"]>;

/** One distinct window, its bounds in ms, and how many entries hold it. */
export class SharedWindow {
  readonly key: string;
  /** The window every entry holding it carries. */
  readonly window: TimeWindow;
  /** Its start in ms; -Infinity without one. */
  readonly startMs: number;
  /** Its end in ms; +Infinity without one (an open end). */
  readonly endMs: number;
  refs = 0;

  constructor(key: string, window: TimeWindow) {
    this.key = key;
    this.window = window;
    this.startMs = timestampMs(window.start) ?? Number.NEGATIVE_INFINITY;
    this.endMs = timestampMs(window.end) ?? Number.POSITIVE_INFINITY;
  }
}

/** Its exact wire value (seconds and nanos, absent bounds apart): equal keys, equal windows. */
function keyOf(w: TimeWindow): string {
  return `${part(w.start)}/${part(w.end)}`;
}

function part(t: Timestamp | undefined): string {
  return t === undefined ? "-" : `${t.seconds}.${t.nanos}`;
}

function sameWindow(a: TimeWindow, b: TimeWindow): boolean {
  return sameTimestamp(a.start, b.start) && sameTimestamp(a.end, b.end);
}

function sameTimestamp(a: Timestamp | undefined, b: Timestamp | undefined): boolean {
  return a === undefined || b === undefined
    ? a === b
    : a.seconds === b.seconds && a.nanos === b.nanos;
}

/** Distinct windows by value, each counted by the entries that hold it. */
export class SharedWindows {
  readonly #byKey = new Map<string, SharedWindow>();

  /**
   * The shared copy of `window` (equal to it), counted once more. The first entry
   * with a window gives the object every later equal one shares; like the counters
   * that hold it, it is never written. `likely`: the one it probably is (checked).
   */
  acquire(window: TimeWindow, likely?: SharedWindow): SharedWindow {
    // A newer version of a pool mostly has the window it had: no key to build then.
    if (likely !== undefined && (likely.window === window || sameWindow(likely.window, window))) {
      likely.refs++;
      return likely;
    }
    const key = keyOf(window);
    let shared = this.#byKey.get(key);
    if (shared === undefined) {
      shared = new SharedWindow(key, window);
      this.#byKey.set(key, shared);
    }
    shared.refs++;
    return shared;
  }

  /** One holder less; the window is forgotten when none is left. */
  release(shared: SharedWindow): void {
    if (--shared.refs === 0) this.#byKey.delete(shared.key);
  }

  /** Distinct windows held. */
  get size(): number {
    return this.#byKey.size;
  }
}
