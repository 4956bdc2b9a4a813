# spool-guard image. Not built on the development machines (no Docker engine there).
# Run it beside Exim with the spool mounted read-only and the flag directory shared:
#   docker run --user spool-guard --group-add <exim gid> \
#     -v /var/spool/exim4:/var/spool/exim4:ro -v /run/spool-guard:/run/spool-guard \
#     -v /etc/spool-guard:/etc/spool-guard:ro -p 9935:9935 spool-guard
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
RUN groupadd --system spool-guard && useradd --system --gid spool-guard --home-dir /nonexistent --shell /usr/sbin/nologin spool-guard
WORKDIR /opt/spool-guard
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json README.md ./
COPY dashboards ./dashboards
COPY alerts ./alerts
COPY deploy ./deploy
USER spool-guard
EXPOSE 9935
ENTRYPOINT ["node", "/opt/spool-guard/dist/cli.js"]
CMD ["run", "--config", "/etc/spool-guard/config.yml"]
