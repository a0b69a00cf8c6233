// `npm run image -- <command>`: the container image harness (progress on stderr, results on stdout).
//   base                    make sure the stand-in base image is in buildah's storage
//   build [--tag T] [--archive FILE]
//                           build the image from this tree's Dockerfile and write its OCI archive
//   bench [--runs 5]        start-to-ready of a worker and a gateway: container vs. host
import { parseArgs } from "node:util";
import { ensureBaseImage } from "./base-image.js";
import { benchmarkStartToReady, formatStartToReady } from "./bench.js";
import { buildBerthImage } from "./build.js";

const USAGE = `usage: npm run image -- base
       npm run image -- build [--tag localhost/berth:dev] [--archive FILE]
       npm run image -- bench [--runs 5]
`;

const [command, ...rest] = process.argv.slice(2);
const { values } = parseArgs({
  args: rest,
  options: {
    tag: { type: "string" },
    archive: { type: "string" },
    runs: { type: "string" },
    help: { type: "boolean" },
  },
});
if (values.help || command === undefined) {
  process.stdout.write(USAGE);
  process.exit(command === undefined && !values.help ? 2 : 0);
}
switch (command) {
  case "base": {
    const base = await ensureBaseImage();
    process.stdout.write(`${JSON.stringify(base, null, 2)}\n`);
    break;
  }
  case "build": {
    const built = await buildBerthImage({
      ...(values.tag === undefined ? {} : { tag: values.tag }),
      ...(values.archive === undefined ? {} : { archive: values.archive }),
    });
    process.stdout.write(`${JSON.stringify(built, null, 2)}\n`);
    break;
  }
  case "bench": {
    const runs = Number(values.runs ?? 5);
    if (!Number.isSafeInteger(runs) || runs < 1) {
      process.stderr.write(`image: --runs must be a positive integer (got "${values.runs}")\n`);
      process.exit(2);
    }
    process.stdout.write(formatStartToReady(await benchmarkStartToReady({ runs })));
    break;
  }
  default:
    process.stderr.write(`image: unknown command "${command}"\n\n${USAGE}`);
    process.exit(2);
}
