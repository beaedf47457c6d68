#!/bin/sh
# One Redis Cluster node of the compose `cluster` profile, bound to loopback (host networking).
#
#   REDIS_PORT       client port (required)
#   REDIS_BUS_PORT   cluster bus port (default REDIS_PORT + 10000, which must stay below 65536)
#   REDIS_BIND       address to bind (default 127.0.0.1)
# Arguments that start with "-" are added to redis-server's (e.g. --maxmemory 2gb, or --requirepass with
# --masterauth); any other first argument is run as a command instead, so the image's redis-cli is at hand:
#   docker run --rm --network host embedcache/redis redis-cli -p 7001 cluster info
#
# The cluster's own state (nodes.conf) and the append-only file live in /data, a volume: a node that
# restarts rejoins its cluster with its data. Node timeout 5 s: a primary that stays unreachable that
# long is failed over to its replica by the cluster itself.
set -eu
case "${1:-}" in
  "" | -*) ;;
  *) exec "$@" ;;
esac
: "${REDIS_PORT:?set REDIS_PORT to this node's client port}"
bus="${REDIS_BUS_PORT:-$((REDIS_PORT + 10000))}"
exec redis-server \
  --port "$REDIS_PORT" \
  --bind "${REDIS_BIND:-127.0.0.1}" \
  --cluster-enabled yes \
  --cluster-port "$bus" \
  --cluster-config-file nodes.conf \
  --cluster-node-timeout 5000 \
  --dir /data \
  --appendonly yes \
  --appendfsync everysec \
  --save "" \
  "$@"
