# runrelay on Node, compiled (npm run build). Multi-stage: the build stage has the dev tools,
# the runtime stage only dist/ and the production dependencies, and runs as the `node` user.
#   docker build -t runrelay .
#   docker run -p 8787:8787 -v runrelay-data:/data runrelay
# RUN steps use relative paths only: scripts/dockerfile-on-host.ts replays this file's build
# and start steps on a machine without a container engine (CI), so the file cannot rot.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: they fetch tools the build does not need (deno, the pinned node, workerd).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN node scripts/build.mjs && mkdir -p data

FROM node:22-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8787 RUNRELAY_DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/package.json ./package.json
# The data volume (embedded libSQL file, generated keys) belongs to the unprivileged user.
COPY --from=build --chown=node:node /app/data /data
USER node
VOLUME /data
EXPOSE 8787
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8787) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM (docker stop) drains and exits 0; node runs as PID 1 and handles it itself.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.mjs"]
