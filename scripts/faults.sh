#!/usr/bin/env bash
# The fault suite's figures: runs the fault tests (tests/faults.rs, and fetch-models' stop test in
# tests/fetch_models.rs; all part of `make test`) and sums what they injected. A fault class is counted only when every fault in it was handled: a
# clean one-line error with its exit code, or a failed row with its reason, and no hang, crash,
# lost or mixed output (any of those fails its test, and this script says so).
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --features fault-injection --test integration -- faults:: fetch_models::a_stop_while_downloading --nocapture --test-threads 1 >"$log" 2>&1
status=$?
# --nocapture lines can share a line with libtest's own "test … ok" output.
lines=$(grep -o 'fault-suite: .*, all handled' "$log" | sed 's/^fault-suite: //')
printf '%s\n' "$lines" | sed 's/^/  /'
tried=$(printf '%s\n' "$lines" | sed -n 's/.*: \([0-9]*\) faults, all handled$/\1/p' | awk '{ n += $1 } END { print n + 0 }')
if [ "$status" -ne 0 ]; then
    echo "the fault suite FAILED; the classes above were handled, these were not:" >&2
    grep -E '^test .* FAILED$|panicked' "$log" >&2
    exit 1
fi
echo "faults tried: $tried; handled cleanly: $tried; crashes: 0; hangs: 0; lost or mixed outputs: 0"
