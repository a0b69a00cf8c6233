// The local cluster's logs: every line of every process (and the supervisor's own)
// appended to <dataDir>/logs/<name>.log, and formatted to an output if one is given.
import { createWriteStream, type WriteStream } from "node:fs";
import { resolve } from "node:path";
import { formatLogLine, type LogFormat } from "./log-format.js";

/** A supervisor log line: a pino-shaped JSON object under the name "berth". */
export type Log = (level: "info" | "warn" | "error", msg: string, fields?: object) => void;

/** Options of {@link ClusterLog}. */
export interface ClusterLogOptions {
  /** Where the `<name>.log` files go (must exist). */
  readonly dir: string;
  /** Every process name, for the width of the name column. */
  readonly names: readonly string[];
  /** Where formatted lines go; none: files only. */
  readonly output?: ((line: string) => void) | undefined;
  readonly format: LogFormat;
  readonly color: boolean;
}

/** The files and the output of relayed lines. */
export class ClusterLog {
  readonly #o: ClusterLogOptions;
  readonly #files = new Map<string, WriteStream>();
  readonly #nameWidth: number;

  constructor(options: ClusterLogOptions) {
    this.#o = options;
    this.#nameWidth = Math.max("berth".length, ...options.names.map((n) => n.length));
  }

  /** Relays one line a process wrote (or the supervisor's own, as "berth"). */
  relay(name: string, line: string, stream: "stdout" | "stderr"): void {
    let file = this.#files.get(name);
    if (file === undefined) {
      file = createWriteStream(resolve(this.#o.dir, `${name}.log`), { flags: "a" });
      this.#files.set(name, file);
    }
    file.write(`${line}\n`);
    this.#o.output?.(
      formatLogLine(name, line, {
        format: this.#o.format,
        nameWidth: this.#nameWidth,
        color: this.#o.color,
        stream,
      }),
    );
  }

  /** The supervisor's own lines. */
  readonly log: Log = (level, msg, fields = {}) =>
    this.relay(
      "berth",
      JSON.stringify({ level, time: new Date().toISOString(), msg, ...fields }),
      level === "info" ? "stdout" : "stderr",
    );

  /** Ends the files once what was written is flushed. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.#files.values()].map((f) => new Promise<void>((done) => f.end(() => done()))),
    );
  }
}
