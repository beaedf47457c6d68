#!/bin/sh
# Forms the Redis Cluster of the compose `cluster` profile, once, and exits 0 when it is ok.
#
#   REDIS_CLUSTER_NODES     the nodes, host:port separated by commas or spaces (required); redis-cli makes
#                           the first ones primaries
#   REDIS_CLUSTER_REPLICAS  replicas per primary (default 1: 6 nodes = 3 primaries + 3 replicas)
#   REDIS_CLUSTER_TIMEOUT   seconds to wait for the nodes and for the cluster to settle (default 120)
#   REDISCLI_AUTH           the nodes' password, if they have one (read by redis-cli itself)
#
# Idempotent: when every node is fresh (knows only itself, holds no slots) it runs
# `redis-cli --cluster create ... --cluster-yes`; when they already form a cluster (a second `up` on the
# same volumes) it creates nothing. Either way it then waits until every node reports cluster_state:ok,
# knows all the others, every replica is attached to its primary, and `redis-cli --cluster check` finds all
# 16384 slots covered and agreed on.
# A half-formed cluster (some nodes fresh, some not: a volume was removed) is an error naming the nodes;
# `docker compose --profile cluster down -v` starts over.
set -eu
nodes="$(printf '%s' "${REDIS_CLUSTER_NODES:?set REDIS_CLUSTER_NODES to the nodes, host:port separated by commas or spaces}" | tr ',' ' ')"
replicas="${REDIS_CLUSTER_REPLICAS:-1}"
timeout="${REDIS_CLUSTER_TIMEOUT:-120}"
deadline=$(( $(date +%s) + timeout ))
count=$(echo $nodes | wc -w)
first=${nodes%% *}

say() { printf '[redis-cluster-init] %s\n' "$*"; }
fail() { say "$*" >&2; exit 1; }
cli() { target="$1"; shift; redis-cli -h "${target%:*}" -p "${target##*:}" "$@"; }
# One field of CLUSTER INFO on a node ("" when the node does not answer).
field() { cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }
in_time() { [ "$(date +%s)" -lt "$deadline" ]; }

for node in $nodes; do
  until [ "$(cli "$node" ping 2>/dev/null)" = PONG ]; do
    in_time || fail "$node did not answer PING within ${timeout}s"
    sleep 0.5
  done
done
say "all $count nodes answer"

fresh=""
formed=""
for node in $nodes; do
  if [ "$(field "$node" cluster_known_nodes)" = 1 ] && [ "$(field "$node" cluster_slots_assigned)" = 0 ]; then
    fresh="$fresh $node"
  else
    formed="$formed $node"
  fi
done

if [ -z "$formed" ]; then
  say "creating the cluster: $count nodes, $replicas replica(s) per primary"
  # shellcheck disable=SC2086 # one argument per node
  redis-cli --cluster create $nodes --cluster-replicas "$replicas" --cluster-yes
elif [ -n "$fresh" ]; then
  fail "half-formed: these nodes are in a cluster:$formed; these are not:$fresh (a node lost its volume, or another server answers on its port?). Start over with: docker compose --profile cluster down -v"
else
  say "the nodes already form a cluster; nothing to create"
fi

# Gossip spreads the new configuration within a few seconds; wait until every node sees all of it, every
# replica is attached to its primary, and redis-cli's own check agrees.
replicas_wanted=$(( count - count / (replicas + 1) ))
settled() {
  for node in $nodes; do
    [ "$(field "$node" cluster_state)" = ok ] && [ "$(field "$node" cluster_known_nodes)" = "$count" ] || return 1
    if cli "$node" info replication 2>/dev/null | tr -d '\r' | grep -q '^role:slave'; then
      cli "$node" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up' || return 1
    fi
  done
  [ "$(cli "$first" cluster nodes 2>/dev/null | awk '$3 ~ /slave/' | wc -l)" = "$replicas_wanted" ] || return 1
  redis-cli --cluster check "$first" >/dev/null 2>&1
}
until settled; do
  in_time || { redis-cli --cluster check "$first" >&2 || true; fail "the cluster was not ok within ${timeout}s"; }
  sleep 0.5
done
say "cluster ok:"
cli "$first" cluster nodes | tr -d '\r' | awk '{ printf "  %s %s", $2, $3; for (i = 9; i <= NF; i++) printf " %s", $i; print "" }'
