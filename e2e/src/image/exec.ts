/** Runs the harness's external commands (buildah, debootstrap, runc, tar) with precise errors. */
import { spawn } from "node:child_process";

const TAIL_LINES = 30;

/** Thrown when a command the image harness runs is missing or exits non-zero. */
export class ImageCommandError extends Error {
  override readonly name = "ImageCommandError";
  constructor(
    /** The command line, for the message. */
    readonly command: string,
    /** Its exit code (undefined when it could not start or was killed). */
    readonly code: number | undefined,
    /** The last lines it printed. */
    readonly outputTail: readonly string[],
    cause?: unknown,
  ) {
    super(
      `${command}: ${code === undefined ? "could not run" : `exited with code ${code}`}${
        outputTail.length ? `\n--- last output ---\n${outputTail.join("\n")}` : ""
      }`,
      cause === undefined ? undefined : { cause },
    );
  }
}

/** Options of {@link run}. */
export interface RunOptions {
  /** Each output line (stdout and stderr), e.g. to show progress. */
  readonly onLine?: (line: string) => void;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Runs `command args…`; resolves with its stdout, rejects with {@link ImageCommandError}. */
export function run(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<string> {
  const shown = [command, ...args].join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      ...(options.env === undefined ? {} : { env: options.env }),
    });
    const tail: string[] = [];
    let stdout = "";
    const lines = (stream: NodeJS.ReadableStream, keep: boolean) => {
      let partial = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        if (keep) stdout += chunk;
        const parts = (partial + chunk).split("\n");
        partial = parts.pop() ?? "";
        for (const line of parts) {
          tail.push(line);
          if (tail.length > TAIL_LINES) tail.shift();
          options.onLine?.(line);
        }
      });
    };
    lines(child.stdout, true);
    lines(child.stderr, false);
    child.once("error", (e) => reject(new ImageCommandError(shown, undefined, tail, e)));
    child.once("close", (code) => {
      if (code === 0) resolve(stdout);
      else reject(new ImageCommandError(shown, code ?? undefined, tail));
    });
  });
}

/** True when `command` can be started (found on PATH). */
export async function hasCommand(command: string, versionArg = "--version"): Promise<boolean> {
  try {
    await run(command, [versionArg]);
    return true;
  } catch (e: unknown) {
    if (e instanceof ImageCommandError && e.code !== undefined) return true;
    return false;
  }
}
