# rankdistill: one image for every role (labeler, trainer, simulator, operator commands).
#   docker build -t rankdistill:local .
#   docker run --rm rankdistill:local config --docs
# The image runs the compiled JavaScript (dist/, built by tsc in the build stage from this src/),
# so the processes start without a TypeScript loader.

FROM node:20-bookworm-slim AS deps
WORKDIR /app
# better-sqlite3 ships prebuilt binaries for linux/x64 and arm64; the toolchain is the fallback
# when none matches. @tensorflow/tfjs-node is optional: when its native download fails the
# trainer uses the wasm backend (src/train/backend.ts).
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# postinstall applies patches/ (kafkajs record-batch CRC32C through @node-rs/crc32).
COPY patches ./patches
# scripts/build.mjs is the `prepare` script; without TypeScript (--omit=dev) it builds nothing.
COPY scripts/build.mjs ./scripts/build.mjs
RUN npm ci --omit=dev --no-audit --no-fund

# dist/: the whole lockfile (TypeScript included), then `prepare` compiles src/.
FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund && test -f dist/.build-stamp

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    RANKDISTILL_STORE__DIR=/var/lib/rankdistill/state \
    RANKDISTILL_SNAPSHOTS__DIR=/var/lib/rankdistill/snapshots \
    RANKDISTILL_SNAPSHOTS__REGISTRY=/var/lib/rankdistill/snapshots/registry.sqlite \
    RANKDISTILL_METRICS__PORT=9464 \
    RANKDISTILL_METRICS__HOST=0.0.0.0
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY schemas ./schemas
COPY --from=build /app/dist ./dist
# State (rebuilt from the changelog when lost) and snapshots live outside /app, owned by the
# unprivileged user the processes run as.
RUN mkdir -p /var/lib/rankdistill/state /var/lib/rankdistill/snapshots /var/lib/rankdistill/labels \
  && chown -R node:node /var/lib/rankdistill
USER node
# Prometheus /metrics and /health (metrics.port); inside the container only, never a fixed host port.
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.RANKDISTILL_METRICS__PORT||9464)+'/health').then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/rankdistill.mjs"]
CMD ["--help"]
