# sandfleet-test/redis: stands in for the redis:7 image where no registry can
# be pulled from (deploy/compose-test.sh). Debian bookworm's redis-server is
# 7.0; same command line, data in /data, redis-cli for the healthcheck.
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--dir", "/data", "--protected-mode", "no"]
