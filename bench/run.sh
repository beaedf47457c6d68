#!/usr/bin/env bash
# Issue 7: EmbedCache against the alternatives, in one run.
#   bench/run.sh           full run (100k-item epochs, 1M embeddings for memory/restart; < 15 min)
#   bench/run.sh --quick   smaller N (< 2 min)
# Builds Release, installs redis-server from Debian's packages if missing, then `EmbedCache.Bench compare`
# starts the service (child process, free loopback ports, temp SaveDir and data root), redis-server (free
# loopback port, no persistence) and the bare transport servers, stops them all at the end, and appends its
# markdown section (headline lines first) to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing Debian's package" >&2
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  # A fresh machine has no package lists yet: fetch them once if the package is unknown.
  $sudo apt-get install -y redis-server >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y redis-server >&2; }
fi

dotnet build EmbedCache.slnx -c Release -nologo -v quiet >&2

out=$(mktemp)
trap 'rm -f "$out"' EXIT
dotnet bench/EmbedCache.Bench/bin/Release/net10.0/EmbedCache.Bench.dll compare --repo "$repo" --redis-server "$(command -v redis-server)" "$@" >"$out"
{
  echo
  echo "### $(date -u +%Y-%m-%d) compare$( [ "${1:-}" = --quick ] && echo ' (--quick)')"
  echo
  cat "$out"
} >>bench/RESULTS.md
cat "$out"
