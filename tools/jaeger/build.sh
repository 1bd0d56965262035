#!/usr/bin/env bash
# Builds Jaeger v2 (in-memory storage, OTLP in, HTTP query API) from this
# module and caches the binary under $HOME/.cache/flotilla/jaeger-<version>-<stamp>/.
# Prints the path of the binary.
set -euo pipefail
cd "$(dirname "$0")"
export GOWORK=off
VERSION=v1.76.0
stamp=$(cat go.mod go.sum | sha256sum | cut -c1-12)
dir="${FLOTILLA_CACHE:-$HOME/.cache/flotilla}/jaeger-${VERSION}-${stamp}"
if [ -x "$dir/jaeger" ] && [ -f "$dir/.done" ]; then echo "$dir/jaeger"; exit 0; fi
if [ "${JAEGER_NO_BUILD:-}" = 1 ]; then echo "jaeger is not built (run tools/jaeger/build.sh)" >&2; exit 1; fi
mkdir -p "$dir"
# One build at a time; a second caller waits and then finds it done.
exec 9>"$dir.lock"
flock 9
if [ -x "$dir/jaeger" ] && [ -f "$dir/.done" ]; then echo "$dir/jaeger"; exit 0; fi
echo "building jaeger ${VERSION} (cold: ~7 min on 2 cores)" >&2
go build -ldflags "-s -w" -o "$dir/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
touch "$dir/.done"
echo "$dir/jaeger"
