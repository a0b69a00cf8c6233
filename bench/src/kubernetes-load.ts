// The client load of the Kubernetes-mode bench, and its ledger.
//
// `concurrency` callers share one paced schedule (`ratePerSecond` reserves in total).
// Each caller takes the next pool, round robin, that no other caller is using, and
// makes one Reserve with a new request_id; a call that fails UNAVAILABLE (or runs
// out of its own gRPC deadline) is retried with the SAME request_id until the
// operation's deadline. Then, with probability `releaseProbability`, it releases one
// of the reservations it holds on that pool (retried the same way: Release is
// idempotent). Since no two callers use one pool at once, a pool's request in flight
// after a kill is the one that gets through first once the pool is served again, and
// callers keep covering the other pools meanwhile.
//
// The ledger keeps every acknowledged reservation. At the end, `settle()` resolves
// operations whose outcome was never seen (it retries them with their request_id)
// and `verify()` compares the ledger with GetPool of every pool: acknowledged
// reserves minus releases = reserved (units and count), reserved ≤ capacity. A
// `replayed: true` answer to the first call of a request_id is counted as false.
import { CapacityServiceClient, type ParsedRichStatus, parseRichStatus } from "@berth/common";
import { v1 } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";

/** A pool the load uses. */
export interface LoadPool {
  readonly id: string;
  readonly capacity: number;
}

/** A definitive answer to a Reserve: the owner decided it (ok or out of capacity). */
export interface ReserveAnswer {
  readonly pool: string;
  /** Epoch ms the answer arrived. */
  readonly at: number;
  /** Epoch ms the attempt that got it was sent. */
  readonly sentAt: number;
  readonly ok: boolean;
  /** Client attempts before this one with the same request_id (0: the first call). */
  readonly retries: number;
}

/** One failed gRPC call (any attempt of any operation). */
export interface CallFailure {
  readonly at: number;
  readonly method: "reserve" | "release";
  /** `CODE` or `CODE/REASON`. */
  readonly key: string;
}

/** Options of {@link ClientLoad}. */
export interface LoadOptions {
  readonly gateway: string;
  readonly pools: readonly LoadPool[];
  readonly concurrency: number;
  readonly ratePerSecond: number;
  /** gRPC deadline of one call. */
  readonly callDeadlineMs: number;
  /** Deadline of one operation (all its retries with one request_id). */
  readonly operationDeadlineMs: number;
  readonly releaseProbability?: number;
  /** Prefix of request_ids (unique per run). */
  readonly tag: string;
}

/** What {@link ClientLoad.verify} found. */
export interface Verification {
  readonly pools: number;
  /** Pools whose GetPool reserved units or active reservations differ from the ledger. */
  readonly mismatched: readonly string[];
  /** Pools with reserved > capacity. */
  readonly oversold: readonly string[];
  readonly acknowledgedUnits: number;
  readonly reservedUnits: number;
  readonly falseReplays: number;
  /** Reservation ids answered for two different request_ids. */
  readonly duplicateIds: number;
  /** Operations whose outcome could not be resolved even by settle(). */
  readonly unresolved: number;
  /** Releases of an acknowledged reservation answered NOT_FOUND. */
  readonly lostReleases: number;
}

interface Pending {
  readonly kind: "reserve" | "release";
  readonly pool: string;
  readonly requestId?: string;
  readonly units?: number;
  readonly reservationId?: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);

/** The load and its ledger; see the file comment. */
export class ClientLoad {
  readonly #o: LoadOptions;
  readonly #client: CapacityServiceClient;
  /** pool → reservation id → units. */
  readonly #held = new Map<string, Map<string, number>>();
  /** reservation id → request_id it was answered for. */
  readonly #idOwner = new Map<string, string>();
  readonly #busy = new Set<string>();
  readonly #pending: Pending[] = [];
  readonly answers: ReserveAnswer[] = [];
  /** Failed calls; INSUFFICIENT_CAPACITY (an answer, not a failure) is counted apart. */
  readonly failures: CallFailure[] = [];
  capacityRejections = 0;
  /** Operations that gave up without a definitive answer (resolved later by settle). */
  operationsUnresolved = 0;
  operations = 0;
  releases = 0;
  falseReplays = 0;
  duplicateIds = 0;
  lostReleases = 0;
  #cursor = 0;
  #seq = 0;
  #nextSlot = 0;
  #running = false;
  #callers: Promise<void>[] = [];

  constructor(o: LoadOptions) {
    this.#o = o;
    this.#client = new CapacityServiceClient(o.gateway, grpc.credentials.createInsecure());
    for (const p of o.pools) this.#held.set(p.id, new Map());
  }

  /** Starts the callers. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#nextSlot = Date.now();
    this.#callers = Array.from({ length: this.#o.concurrency }, () => this.#caller());
  }

  /** Stops taking new operations and waits for those in flight (each bounded by its deadline). */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#callers);
    this.#callers = [];
  }

  close(): void {
    this.#client.close();
  }

  /** Call failures at or after `since` (and before `until`), counted by key. */
  failuresBetween(since: number, until = Number.POSITIVE_INFINITY): Map<string, number> {
    const out = new Map<string, number>();
    for (const f of this.failures) {
      if (f.at < since || f.at >= until) continue;
      const k = `${f.method} ${f.key}`;
      out.set(k, (out.get(k) ?? 0) + 1);
    }
    return out;
  }

  async #caller(): Promise<void> {
    while (this.#running) {
      const pool = this.#takePool();
      if (pool === undefined) {
        await sleep(5);
        continue;
      }
      try {
        await this.#paced();
        if (!this.#running) return;
        await this.#reserve(pool);
        const held = this.#held.get(pool.id) as Map<string, number>;
        if (held.size > 0 && Math.random() < (this.#o.releaseProbability ?? 0.5)) {
          const ids = [...held.keys()];
          await this.#release(pool.id, ids[Math.floor(Math.random() * ids.length)] as string);
        }
      } finally {
        this.#busy.delete(pool.id);
      }
    }
  }

  async #paced(): Promise<void> {
    const interval = 1000 / this.#o.ratePerSecond;
    const now = Date.now();
    // Never bank more than one second of missed slots (callers blocked on a dead owner).
    const at = Math.max(now - 1000, this.#nextSlot);
    this.#nextSlot = at + interval;
    if (at > now) await sleep(at - now);
  }

  #takePool(): LoadPool | undefined {
    const pools = this.#o.pools;
    for (let i = 0; i < pools.length; i++) {
      const p = pools[(this.#cursor + i) % pools.length] as LoadPool;
      if (!this.#busy.has(p.id)) {
        this.#cursor = (this.#cursor + i + 1) % pools.length;
        this.#busy.add(p.id);
        return p;
      }
    }
    return undefined;
  }

  #failed(method: "reserve" | "release", s: ParsedRichStatus): ParsedRichStatus {
    const key = `${grpc.status[s.code] ?? s.code}${s.reason ? `/${s.reason}` : ""}`;
    this.failures.push({ at: Date.now(), method, key });
    return s;
  }

  #call<Req, Res>(
    method: (
      req: Req,
      md: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (e: grpc.ServiceError | null, r: Res) => void,
    ) => unknown,
    req: Req,
    deadlineMs: number,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(
        this.#client,
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (e: grpc.ServiceError | null, r: Res) => (e ? reject(e) : resolve(r)),
      );
    });
  }

  /**
   * One Reserve operation, retried with its request_id until `deadlineMs` is spent.
   * @returns false when its outcome stayed unknown (it is kept for settle())
   */
  async #reserve(
    pool: LoadPool,
    given?: { requestId: string; units: number },
    deadlineMs = this.#o.operationDeadlineMs,
  ): Promise<boolean> {
    this.operations++;
    const requestId = given?.requestId ?? `${this.#o.tag}-${this.#seq++}`;
    const units = given?.units ?? (Math.random() < 0.3 ? 2 : 1);
    const end = Date.now() + deadlineMs;
    let first = given === undefined;
    for (let retries = 0; ; retries++) {
      const sentAt = Date.now();
      try {
        const r = await this.#call(
          this.#client.reserve,
          v1.ReserveRequest.fromPartial({ pool: pool.id, units, requestId }),
          Math.max(1, Math.min(this.#o.callDeadlineMs, end - sentAt)),
        );
        if (first && r.replayed) this.falseReplays++;
        const before = this.#idOwner.get(r.reservationId);
        if (before !== undefined && before !== requestId) this.duplicateIds++;
        this.#idOwner.set(r.reservationId, requestId);
        this.#held.get(pool.id)?.set(r.reservationId, r.units);
        this.answers.push({ pool: pool.id, at: Date.now(), sentAt, ok: true, retries });
        return true;
      } catch (e: unknown) {
        const s = parseRichStatus(e);
        if (s.reason === "INSUFFICIENT_CAPACITY") {
          this.capacityRejections++;
          this.answers.push({ pool: pool.id, at: Date.now(), sentAt, ok: false, retries });
          return true;
        }
        this.#failed("reserve", s);
        first = false;
        if (RETRYABLE.has(s.code) && Date.now() < end - 20) {
          await sleep(Math.min(50, s.retryDelayMs ?? 50));
          continue;
        }
        this.operationsUnresolved++;
        this.#pending.push({ kind: "reserve", pool: pool.id, requestId, units });
        return false;
      }
    }
  }

  async #release(
    pool: string,
    reservationId: string,
    deadlineMs = this.#o.operationDeadlineMs,
  ): Promise<boolean> {
    this.releases++;
    const end = Date.now() + deadlineMs;
    for (;;) {
      try {
        await this.#call(
          this.#client.release,
          { reservationId },
          Math.max(1, Math.min(this.#o.callDeadlineMs, end - Date.now())),
        );
        this.#held.get(pool)?.delete(reservationId);
        return true;
      } catch (e: unknown) {
        const s = this.#failed("release", parseRichStatus(e));
        if (s.code === grpc.status.NOT_FOUND) {
          // An acknowledged reservation the owner does not know: lost.
          this.lostReleases++;
          this.#held.get(pool)?.delete(reservationId);
          return true;
        }
        if (RETRYABLE.has(s.code) && Date.now() < end - 20) {
          await sleep(Math.min(50, s.retryDelayMs ?? 50));
          continue;
        }
        this.operationsUnresolved++;
        this.#pending.push({ kind: "release", pool, reservationId });
        return false;
      }
    }
  }

  /** Resolves every operation whose outcome was not seen, by retrying it (the load stopped). */
  async settle(deadlineMs = 60_000): Promise<number> {
    let left = 0;
    for (const p of this.#pending.splice(0)) {
      const pool = this.#o.pools.find((x) => x.id === p.pool) as LoadPool;
      const ok =
        p.kind === "reserve"
          ? await this.#reserve(
              pool,
              { requestId: p.requestId as string, units: p.units as number },
              deadlineMs,
            )
          : await this.#release(p.pool, p.reservationId as string, deadlineMs);
      if (!ok) left++;
    }
    return left;
  }

  /** Compares the ledger with every pool's GetPool (call after stop() and settle()). */
  async verify(): Promise<Verification> {
    const mismatched: string[] = [];
    const oversold: string[] = [];
    let acknowledgedUnits = 0;
    let reservedUnits = 0;
    for (const p of this.#o.pools) {
      const held = this.#held.get(p.id) as Map<string, number>;
      const units = [...held.values()].reduce((a, b) => a + b, 0);
      let got: v1.GetPoolResponse | undefined;
      for (let attempt = 0; got === undefined; attempt++) {
        try {
          got = await this.#call(this.#client.getPool, { pool: p.id }, 10_000);
        } catch (e: unknown) {
          if (attempt >= 5) throw e;
          await sleep(500);
        }
      }
      const pool = got.pool;
      acknowledgedUnits += units;
      reservedUnits += pool?.reserved ?? 0;
      if (pool === undefined || pool.reserved !== units || pool.activeReservations !== held.size) {
        mismatched.push(
          `${p.id}: ledger ${units} units / ${held.size} reservations, GetPool ${pool?.reserved} / ${pool?.activeReservations}`,
        );
      }
      if (pool !== undefined && pool.reserved > pool.capacity) {
        oversold.push(`${p.id}: ${pool.reserved} > ${pool.capacity}`);
      }
    }
    return {
      pools: this.#o.pools.length,
      mismatched,
      oversold,
      acknowledgedUnits,
      reservedUnits,
      falseReplays: this.falseReplays,
      duplicateIds: this.duplicateIds,
      unresolved: this.#pending.length,
      lostReleases: this.lostReleases,
    };
  }
}
