// `berth <command>` (`npx berth`, `npm run berth --`): the berth CLI. See usage() in args.ts.
import { runCli } from "./run.js";

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});
