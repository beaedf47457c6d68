#!/usr/bin/env bash
# Python client vs .NET client, cached-epoch throughput in one run (gRPC over TCP, and the shared-memory ring over
# the Unix socket); prints a section for RESULTS.md.
#   bench/python-client.sh [--items N] [--seconds S] [--rounds R] [--batch-size B]
# Builds the service and tests/ClientProbe in Release, installs the Python client into a temp venv
# (Debian's python3 with --system-site-packages, offline), then runs bench/python_client.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
configuration=${CONFIGURATION:-Release}
dotnet build -c "$configuration" -v q -nologo src/CacheService >/dev/null
dotnet build -c "$configuration" -v q -nologo tests/ClientProbe >/dev/null
venv=$(mktemp -d /tmp/embedcache-pyvenv-XXXXXX)
trap 'rm -rf "$venv"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q --no-build-isolation --no-index --disable-pip-version-check ./src/CacheClient/python
"$venv/bin/python" bench/python_client.py \
  --service-dll "src/CacheService/bin/$configuration/net10.0/EmbedCache.CacheService.dll" \
  --probe-dll "tests/ClientProbe/bin/$configuration/net10.0/EmbedCache.ClientProbe.dll" "$@"
