#!/usr/bin/env bash
# A local S3 server for tests and the Stack v2 reference: s3rver (npm), which checks access key
# ids (S3RVER / S3RVER), stores objects in a directory and speaks the S3 REST API, multipart
# uploads included. Installs s3rver on first use, then runs it in the foreground.
#
#   scripts/s3-server.sh PORT DATA_DIR BUCKET...
#
# VALKIT_S3RVER_CACHE: where s3rver is installed (default $HOME/.cache/valkit-s3rver).
# Needs node (>= 20) and npm, as the local chain does.
set -euo pipefail
S3RVER_VERSION=3.7.1
port=${1:?usage: scripts/s3-server.sh PORT DATA_DIR BUCKET...}
data=${2:?usage: scripts/s3-server.sh PORT DATA_DIR BUCKET...}
shift 2
cache="${VALKIT_S3RVER_CACHE:-${HOME:-/tmp}/.cache/valkit-s3rver}/s3rver-$S3RVER_VERSION"
bin="$cache/node_modules/s3rver/bin/s3rver.js"
command -v node >/dev/null || { echo "s3-server: node is not on PATH" >&2; exit 1; }
if [ ! -f "$bin" ]; then
    mkdir -p "$cache"
    # One installer at a time: tests start several servers at once.
    exec 9>"$cache.lock"
    flock 9
    if [ ! -f "$bin" ]; then
        echo "s3-server: installing s3rver $S3RVER_VERSION into $cache" >&2
        npm install --prefix "$cache" --no-audit --no-fund --silent "s3rver@$S3RVER_VERSION" >&2
    fi
    exec 9>&-
fi
mkdir -p "$data"
buckets=()
for b in "$@"; do buckets+=(--configure-bucket "$b"); done
exec node "$bin" --silent -d "$data" -a 127.0.0.1 -p "$port" "${buckets[@]}"
