# Redis Cluster node for `docker compose --profile cluster` (the shared remote tier of EmbedCache nodes).
#
# Debian's own redis-server, installed over host networking on top of the local Debian 13 base that
# deploy/build-images.sh imports (no image registry needed). Debian 13 ships Redis 8.0 (Debian 12 shipped
# 7.0); cluster mode, `redis-cli --cluster create` and the protocol EmbedCache speaks are the same in both.
# Installed here rather than through the base's debootstrap --include so that it reaches machines whose
# base image already exists (the base is built once and never rebuilt) and keeps Redis out of the
# service and trainer images. deploy/build-images.sh builds it; by hand, from the repository root:
#   docker build --network host --build-arg BASE_IMAGE=embedcache/base:trixie \
#     -f deploy/redis.Dockerfile -t embedcache/redis deploy/cluster
# The build context is deploy/cluster (the two scripts below).
ARG BASE_IMAGE=embedcache/base:trixie
FROM ${BASE_IMAGE}

# policy-rc.d: the package's postinst must not try to start a server inside the build.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /usr/sbin/policy-rc.d \
 && mkdir -p /data && chown redis:redis /data

COPY redis-node.sh /usr/local/bin/embedcache-redis-node
COPY redis-cluster-init.sh /usr/local/bin/embedcache-redis-cluster-init

USER redis
WORKDIR /data
VOLUME ["/data"]
# Runs one cluster node; REDIS_PORT and REDIS_BUS_PORT choose its ports (see redis-node.sh).
ENTRYPOINT ["/usr/local/bin/embedcache-redis-node"]
