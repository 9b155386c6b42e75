#!/usr/bin/env bash
# A whole eval-losses step, copies evaluated once (the default) against every uid evaluated again
# (--evaluate-copies, upstream's way and valkit's before issue 24): DISTINCT random Llama models
# (hidden 512 x 8 layers, vocab 32,000; 2 x 1,024 tokens), the first COPIES of them re-uploaded by
# another miner (examples/step_fixture.rs). Release build, one worker process per model, the two
# sides alternating RUNS times in one run; the tables must be byte-identical. Prints
# the runs and the medians.
#
#   scripts/bench/step.sh        (DISTINCT=5 COPIES=2 RUNS=3; RAYON_NUM_THREADS=2 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
DISTINCT=${DISTINCT:-5} COPIES=${COPIES:-2} RUNS=${RUNS:-3}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
target=${CARGO_TARGET_DIR:-target}
cargo build --locked --release --bin valkit --example step_fixture -q
VALKIT="$target/release/valkit"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$target/release/examples/step_fixture" "$work" "$DISTINCT" "$COPIES"
source scripts/bench/lib.sh
once=() each=()
# One eval-losses run per side, its wall time appended to that side's list.
once_side() {
    local start=$EPOCHREALTIME
    "$VALKIT" eval-losses --models "$work/models.parquet" --batches "$work/batches.parquet" --out "$work/once.parquet" -q
    once+=("$(seconds_since "$start")")
}
each_side() {
    local start=$EPOCHREALTIME
    "$VALKIT" eval-losses --models "$work/models.parquet" --batches "$work/batches.parquet" --out "$work/each.parquet" -q \
        --evaluate-copies
    each+=("$(seconds_since "$start")")
}
alternate "$RUNS" once_side each_side
cmp -s "$work/once.parquet" "$work/each.parquet" || { echo "tables differ" >&2; exit 1; }
echo "copies evaluated once: ${once[*]} s; every uid evaluated: ${each[*]} s"
mo=$(median "${once[@]}") me=$(median "${each[@]}")
uids=$((DISTINCT + COPIES))
awk -v o="$mo" -v e="$me" -v u="$uids" -v d="$DISTINCT" -v t="$RAYON_NUM_THREADS" 'BEGIN {
    printf "%d uids (%d distinct models), %d threads, medians: once %.2f s, every uid %.2f s: %.2fx (tables identical)\n", u, d, t, o, e, e / o }'
