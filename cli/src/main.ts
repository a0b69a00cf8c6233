// `berth <command>` (`npx berth`, `npm run berth --`): the berth CLI. See usage() in args.ts.
import { runCli } from "./run.js";

// `berth availability | head -1` closes the pipe early: that is the reader's choice,
// not an error worth a stack trace.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code !== "EPIPE") throw e;
  process.exit(process.exitCode ?? 0);
});

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});
