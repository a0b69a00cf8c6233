# syntax=docker/dockerfile:1
# Berth: one image for the four programs — berth-operator, berth-worker, berth-gateway and
# the berth CLI — each a command on PATH. It runs the JavaScript bundles `npm run build`
# makes (esbuild, scripts/build.mjs), never TypeScript: a pod starts in well under a second.
#
#   docker build -t berth:0.1.0 .          (or: buildah bud --layers -t berth:0.1.0 .)
#   docker run --rm berth:0.1.0            prints `berth --help`
#   docker run --rm berth:0.1.0 berth-worker --help
#
# Runs as uid/gid 10001 and works with a read-only root filesystem: nothing is written
# outside the volumes a pod mounts — /var/lib/berth (a worker's SQLite journal, when it
# does not use Cassandra) and /tmp. There is no ENTRYPOINT: the command is the program,
# so Kubernetes sets `command: [berth-worker]` (or args) per component. No HEALTHCHECK:
# Kubernetes ignores it; its probes use each program's /readyz and /healthz.
#
# NODE_IMAGE pins the Node the project pins (the `node` devDependency in package-lock.json;
# a unit test keeps them equal). e2e/src/image/ assembles a local stand-in with this name
# where no registry can be reached.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# --- manifests: the package.json files npm ci needs (a layer both install stages share) ---
FROM ${NODE_IMAGE} AS manifests
WORKDIR /app
COPY package.json package-lock.json ./
COPY common/package.json common/
COPY proto/package.json proto/
COPY kubernetes/package.json kubernetes/
COPY testing/package.json testing/
COPY worker/package.json worker/
COPY gateway/package.json gateway/
COPY operator/package.json operator/
COPY local/package.json local/
COPY cli/package.json cli/
COPY bench/package.json bench/
COPY e2e/package.json e2e/

# --- deps: the production dependencies the bundles import (npm ci --omit=dev) ---------------
FROM manifests AS deps
# --ignore-scripts: no runtime dependency needs an install script, and the root `prepare`
# (the build) belongs to the build stage. The workspaces' own links (@berth/*) go: the
# bundles contain our code, they import only npm dependencies. Type declarations and
# source maps of dependencies are never loaded at run time (a third of node_modules:
# @kubernetes/client-node alone ships 33 MB of them).
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@berth node_modules/.bin node_modules/.package-lock.json \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete

# --- build: every dependency, then `npm run build` (bundles into <package>/dist/) ------------
FROM manifests AS build
# --ignore-scripts: the build needs only esbuild (which runs from its platform package
# without its install script); the `node` devDependency would otherwise download a second
# Node, and `prepare` would build before the sources are here.
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --ignore-scripts --no-audit --no-fund
# The sources (.dockerignore leaves out docs, tests, charts: a change there rebuilds nothing).
COPY . .
# /out: what the runtime stage takes — each program's package.json (its "type"), launcher
# (bin/) and bundles (dist/); not the test Cassandra's CLI (testing/dist/cassandra).
RUN npm run build \
 && mkdir -p /out \
 && cp package.json /out/ \
 && for p in worker gateway operator cli; do \
      mkdir -p /out/$p && cp -r $p/package.json $p/bin $p/dist /out/$p/; \
    done

# --- runtime ---------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
ARG NODE_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="Berth: a Kubernetes-native capacity-reservation service that never oversells. One image: berth-operator, berth-worker, berth-gateway, berth (CLI)." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
# The commands on PATH (links into /app, filled below); user and group 10001; the journal
# volume's mount point, owned by that user. Before the COPYs, so a code change reuses it.
RUN ln -s /app/worker/bin/berth-worker.js /usr/local/bin/berth-worker \
 && ln -s /app/gateway/bin/berth-gateway.js /usr/local/bin/berth-gateway \
 && ln -s /app/operator/bin/berth-operator.js /usr/local/bin/berth-operator \
 && ln -s /app/cli/bin/berth.js /usr/local/bin/berth \
 && groupadd --gid 10001 berth \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /var/lib/berth \
      --shell /usr/sbin/nologin berth \
 && mkdir -p /var/lib/berth \
 && chown 10001:10001 /var/lib/berth
WORKDIR /app
# V8 grows the young generation to two 64 MB semi-spaces under load, and they stay resident;
# 16 MB ones cut the gateway's and workers' peak RSS under load by 25-30 % (docs/benchmarks.md,
# "Memory"; local mode passes the same flag). A pod's own NODE_OPTIONS replaces it. The
# old generation's flags, which NODE_OPTIONS does not accept, the gateway and the workers
# set on themselves (SERVER_V8_FLAGS in common/src/server-v8-flags.ts).
ENV NODE_OPTIONS="--max-semi-space-size=16"
COPY --from=deps /app/node_modules node_modules/
COPY --from=build /out/ ./
USER 10001:10001
ENTRYPOINT []
CMD ["berth", "--help"]
