// Kubernetes Events for what users should see in `kubectl describe` / `kubectl get
// events`: shard moves, quorum changes, rejected specs. Rate-limited in total, so a
// burst of moves cannot flood the API server, and never fatal: an event that cannot
// be written is logged at debug and dropped.
import { type CoreV1Api, type CoreV1Event, V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";

/** The object an event is about. */
export interface EventSubject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
}

/** Options of {@link EventRecorder}. */
export interface EventRecorderOptions {
  readonly api: CoreV1Api;
  /** `source.component` / `reportingController`, e.g. "berth-operator". */
  readonly component: string;
  /** `reportingInstance`: the operator pod. */
  readonly instance: string;
  readonly logger: Logger;
  /** Most events per second (burst: ten times that). Default 5. */
  readonly perSecond?: number;
}

/** Writes core/v1 Events, at most `perSecond` on average. */
export class EventRecorder {
  readonly #o: EventRecorderOptions;
  #tokens: number;
  #at = performance.now();
  #dropped = 0;

  constructor(options: EventRecorderOptions) {
    this.#o = options;
    this.#tokens = (options.perSecond ?? 5) * 10;
  }

  /** Events dropped by the rate limit so far. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Records an event; resolves once written or dropped, never rejects. */
  async record(
    subject: EventSubject,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void> {
    const rate = this.#o.perSecond ?? 5;
    const now = performance.now();
    this.#tokens = Math.min(rate * 10, this.#tokens + ((now - this.#at) / 1000) * rate);
    this.#at = now;
    if (this.#tokens < 1) {
      this.#dropped++;
      return;
    }
    this.#tokens -= 1;
    const time = new Date();
    const body: CoreV1Event = {
      metadata: { generateName: `${subject.name}.`, namespace: subject.namespace },
      involvedObject: {
        apiVersion: subject.apiVersion,
        kind: subject.kind,
        namespace: subject.namespace,
        name: subject.name,
        ...(subject.uid === undefined ? {} : { uid: subject.uid }),
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: this.#o.component },
      reportingComponent: this.#o.component,
      reportingInstance: this.#o.instance,
      action: reason,
      firstTimestamp: time,
      lastTimestamp: time,
      eventTime: new V1MicroTime(time.getTime()),
      count: 1,
    };
    try {
      await this.#o.api.createNamespacedEvent({ namespace: subject.namespace, body });
    } catch (e: unknown) {
      this.#o.logger.debug({ err: (e as Error).message, reason }, "could not record an event");
    }
  }
}
