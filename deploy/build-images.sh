#!/usr/bin/env bash
# Builds the EmbedCache images with no image registry: a Debian 13 base image from a local
# debootstrap, self-contained publishes of the service and the trainer, two thin images on top,
# and the Redis Cluster node image of the compose `cluster` profile (Debian's redis-server on the
# base). Idempotent and cached: the base image is built once; the service and trainer images are
# rebuilt only when the publish output changed, the Redis image only when its files or the base did.
#
#   deploy/build-images.sh            # docker engine and compose (installed, started if missing), base, redis, publish, images
#   deploy/build-images.sh --engine   # only make sure a Docker engine is reachable and a compose tool installed
#   deploy/build-images.sh --base     # engine and base image only (CI starts this early, in the background)
#   deploy/build-images.sh --redis    # engine, base and the Redis image only (no .NET publish)
#
# Environment: BASE_IMAGE (default embedcache/base:trixie), SERVICE_IMAGE (embedcache/service),
# TRAINER_IMAGE (embedcache/trainer), REDIS_IMAGE (embedcache/redis),
# DEBIAN_MIRROR (http://deb.debian.org/debian).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

BASE_IMAGE="${BASE_IMAGE:-embedcache/base:trixie}"
SERVICE_IMAGE="${SERVICE_IMAGE:-embedcache/service}"
TRAINER_IMAGE="${TRAINER_IMAGE:-embedcache/trainer}"
REDIS_IMAGE="${REDIS_IMAGE:-embedcache/redis}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { printf '[build-images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_engine() {
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io (Debian's Docker engine)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
  fi
  if docker info >/dev/null 2>&1; then
    return
  fi
  log "starting dockerd (log: /var/log/embedcache-dockerd.log)"
  # Sandboxes without a systemd: start the daemon directly. Host networking is all the images and
  # containers here use, so the daemon's own bridge and iptables rules are not needed (and may be
  # impossible in a container sandbox).
  as_root sh -c 'nohup dockerd --bridge=none --iptables=false --ip6tables=false >/var/log/embedcache-dockerd.log 2>&1 &'
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  log "dockerd did not come up; its log:"; tail -20 /var/log/embedcache-dockerd.log >&2 || true
  exit 1
}

# `docker-compose up` (README) needs a compose tool, and Debian's docker.io brings none: neither the v2 plugin
# (`docker compose`) nor `docker-compose`. Debian's docker-compose package (1.29 on Debian 12) runs our compose file.
ensure_compose() {
  if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
    return
  fi
  log "installing docker-compose (Debian's package)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 || {
    # A fresh machine has no package lists yet.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  }
}

ensure_base() {
  # One debootstrap at a time: a second caller waits for the first and then finds the image.
  exec 9>"${TMPDIR:-/tmp}/embedcache-base-image.lock"
  flock 9
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE present"
    flock -u 9
    return
  fi
  command -v debootstrap >/dev/null 2>&1 || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  local root
  root="$(mktemp -d /tmp/embedcache-rootfs.XXXXXX)"
  log "debootstrap minbase trixie into $root"
  # libicu for .NET globalization would be optional (invariant mode is set in the images); ca-certificates for outbound TLS;
  # fonts-dejavu-core so the trainer's training.png (ScottPlot) has its axis labels and legends.
  as_root debootstrap --variant=minbase --include=ca-certificates,fonts-dejavu-core trixie "$root" "$DEBIAN_MIRROR" >/dev/null
  as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  log "importing $BASE_IMAGE"
  as_root tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  as_root rm -rf "$root"
  flock -u 9
}

# The Redis Cluster node image (deploy/redis.Dockerfile, context deploy/cluster), tagged with a hash of its
# files and of the base image's id: a second run (or a second engineer) finds it and sends nothing to the
# engine; apt runs only when the Dockerfile, the scripts or the base changed.
build_redis() {
  exec 8>"${TMPDIR:-/tmp}/embedcache-redis-image.lock"
  flock 8
  local hash
  hash="$( (docker image inspect --format '{{.Id}}' "$BASE_IMAGE"; cat deploy/redis.Dockerfile deploy/cluster/*) | sha256sum | cut -c1-16)"
  if docker image inspect "$REDIS_IMAGE:$hash" >/dev/null 2>&1; then
    log "$REDIS_IMAGE:$hash is up to date"
  else
    log "building $REDIS_IMAGE:$hash (apt-get install redis-server on $BASE_IMAGE)"
    docker build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" -f deploy/redis.Dockerfile -t "$REDIS_IMAGE:$hash" deploy/cluster >/dev/null
  fi
  docker tag "$REDIS_IMAGE:$hash" "$REDIS_IMAGE:latest"
  flock -u 8
}

# `dotnet publish` into artifacts/<name>, then the image, tagged with a hash of the publish output
# so an unchanged publish reuses the image that is already there.
publish_and_build() {
  local project="$1" name="$2" dockerfile="$3" image="$4"
  log "publishing $project (self-contained, linux-x64)"
  rm -rf "artifacts/$name"
  dotnet publish "$project" -c Release -r linux-x64 --self-contained -o "artifacts/$name" -p:TorchBackend=cpu -nologo -v quiet >/dev/null
  local hash
  hash="$( (cd "artifacts/$name" && find . -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum "$repo/$dockerfile") | sha256sum | cut -c1-16)"
  if docker image inspect "$image:$hash" >/dev/null 2>&1; then
    log "$image:$hash is up to date"
  else
    log "building $image:$hash"
    docker build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$dockerfile" -t "$image:$hash" "artifacts/$name" >/dev/null
  fi
  docker tag "$image:$hash" "$image:latest"
}

ensure_engine
ensure_compose
[ "${1:-}" = "--engine" ] && exit 0
ensure_base
[ "${1:-}" = "--base" ] && exit 0
build_redis
[ "${1:-}" = "--redis" ] && { log "done: $REDIS_IMAGE:latest"; exit 0; }
publish_and_build src/CacheService service deploy/service.Dockerfile "$SERVICE_IMAGE"
publish_and_build src/Trainer trainer deploy/trainer.Dockerfile "$TRAINER_IMAGE"
log "done: $SERVICE_IMAGE:latest, $TRAINER_IMAGE:latest, $REDIS_IMAGE:latest"
