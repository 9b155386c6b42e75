#!/usr/bin/env bash
# A whole eval-losses step, three ways (issue 24): as valkit runs it (copies evaluated once, the
# next model's worker loading while the current one computes), copies once but one model loaded
# at a time (--no-load-ahead), and every uid evaluated one after the other as upstream and valkit
# before issue 24 did (--evaluate-copies --no-load-ahead). DISTINCT random Llama models (hidden
# 512 x 8 layers, vocab 32,000; 2 x 1,024 tokens), the first COPIES of them re-uploaded by another
# miner (examples/step_fixture.rs). Release build, one worker process per model, the sides in
# rotating order RUNS times in one run; the tables must be byte-identical. Prints the runs and the
# medians.
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
valkit_side=() one_side=() each_side=()
# step OUT FLAG...: one eval-losses run; prints its wall seconds.
step() {
    local out=$1 start=$EPOCHREALTIME
    shift
    "$VALKIT" eval-losses --models "$work/models.parquet" --batches "$work/batches.parquet" --out "$work/$out" -q "$@"
    seconds_since "$start"
}
as_valkit() { valkit_side+=("$(step valkit.parquet)"); }
one_at_a_time() { one_side+=("$(step one.parquet --no-load-ahead)"); }
every_uid() { each_side+=("$(step each.parquet --evaluate-copies --no-load-ahead)"); }
alternate "$RUNS" as_valkit one_at_a_time every_uid
for t in one each; do
    cmp -s "$work/valkit.parquet" "$work/$t.parquet" || { echo "tables differ: valkit.parquet $t.parquet" >&2; exit 1; }
done
echo "valkit (once, load-ahead): ${valkit_side[*]} s; once, one at a time: ${one_side[*]} s; every uid, one at a time: ${each_side[*]} s"
mv=$(median "${valkit_side[@]}") mo=$(median "${one_side[@]}") me=$(median "${each_side[@]}")
uids=$((DISTINCT + COPIES))
awk -v v="$mv" -v o="$mo" -v e="$me" -v u="$uids" -v d="$DISTINCT" -v t="$RAYON_NUM_THREADS" 'BEGIN {
    printf "%d uids (%d distinct models), %d threads, medians: valkit %.2f s, once one at a time %.2f s, every uid %.2f s: load-ahead %.2fx, the step %.2fx (tables identical)\n", u, d, t, v, o, e, o / v, e / v }'
