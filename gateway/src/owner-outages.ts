// Owner outages as the gateway sees them: summarised warnings, never one line per
// failed attempt, and a counter of outages per owner.
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";

/** The owner an attempt went to. */
export interface OutageRoute {
  readonly owner: string;
  readonly address: string;
  readonly shard: number;
}

/** Options of {@link OwnerOutages}. */
export interface OwnerOutagesOptions {
  readonly logger?: Logger;
  /** Registers `berth_gateway_owner_outages_total{owner}` here when given. */
  readonly registry?: Registry;
  /** Least time between two "still unreachable" warnings for one owner. Default 10,000 ms. */
  readonly warnIntervalMs?: number;
  /** Clock in ms. Default Date.now. */
  readonly now?: () => number;
}

interface Outage {
  readonly since: number;
  address: string;
  lastWarnAt: number;
  failures: number;
  failuresSinceWarn: number;
}

/**
 * Tracks which owners are unreachable. An outage starts at the first unreachable
 * attempt to an owner (one warning, one count), is summarised at most once per
 * `warnIntervalMs` while it lasts (a warning with the failed attempts since the last
 * one), and ends with the owner's next answer of any kind (one info line with the
 * outage's length and failed attempts).
 */
export class OwnerOutages {
  readonly #outages = new Map<string, Outage>();
  readonly #logger: Logger | undefined;
  readonly #counter: Counter<"owner"> | undefined;
  readonly #warnIntervalMs: number;
  readonly #now: () => number;

  constructor(options: OwnerOutagesOptions = {}) {
    this.#logger = options.logger;
    this.#warnIntervalMs = options.warnIntervalMs ?? 10_000;
    this.#now = options.now ?? Date.now;
    if (options.registry) {
      this.#counter = new Counter({
        name: "berth_gateway_owner_outages_total",
        help: "Times a shard owner became unreachable from this gateway (connection refused or lost, keepalive unanswered).",
        labelNames: ["owner"],
        registers: [options.registry],
      });
    }
  }

  /** An attempt to `route`'s owner failed without an answer from it. */
  unreachable(route: OutageRoute, detail: string): void {
    const now = this.#now();
    const known = this.#outages.get(route.owner);
    if (known === undefined) {
      this.#outages.set(route.owner, {
        since: now,
        address: route.address,
        lastWarnAt: now,
        failures: 1,
        failuresSinceWarn: 0,
      });
      this.#counter?.inc({ owner: route.owner });
      this.#logger?.warn(
        {
          event: "owner.unreachable",
          owner: route.owner,
          address: route.address,
          shard: route.shard,
          detail,
        },
        "shard owner unreachable; retrying within the callers' deadlines",
      );
      return;
    }
    known.address = route.address;
    known.failures++;
    known.failuresSinceWarn++;
    if (now - known.lastWarnAt < this.#warnIntervalMs) return;
    this.#logger?.warn(
      {
        event: "owner.still_unreachable",
        owner: route.owner,
        address: route.address,
        outageMs: now - known.since,
        failedAttempts: known.failuresSinceWarn,
        detail,
      },
      "shard owner still unreachable",
    );
    known.lastWarnAt = now;
    known.failuresSinceWarn = 0;
  }

  /** The owner answered (anything it said itself): its outage, if any, is over. */
  answered(owner: string): void {
    const known = this.#outages.get(owner);
    if (known === undefined) return;
    this.#outages.delete(owner);
    this.#logger?.info(
      {
        event: "owner.reachable_again",
        owner,
        address: known.address,
        outageMs: this.#now() - known.since,
        failedAttempts: known.failures,
      },
      "shard owner reachable again",
    );
  }

  /** Forgets outages of owners that are no longer members (they are not coming back under that id). */
  retain(members: ReadonlySet<string>): void {
    for (const owner of this.#outages.keys()) {
      if (!members.has(owner)) this.#outages.delete(owner);
    }
  }

  /** Owners currently in an outage. */
  get unreachableOwners(): string[] {
    return [...this.#outages.keys()];
  }
}
