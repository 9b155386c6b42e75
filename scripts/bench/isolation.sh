#!/usr/bin/env bash
# What process isolation costs per model: eval-losses over the demo's six tiny models, one
# worker process per model (the default) against --no-isolation, alternating in the same run,
# RUNS pairs; prints each pair and the medians. Tiny models load in milliseconds, so the
# difference is nearly all the per-model cost of spawning a worker and sending it its batches.
#
#   scripts/bench/isolation.sh            (VALKIT=path/to/valkit, default target/debug/valkit; RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/../.."
VALKIT=${VALKIT:-${CARGO_TARGET_DIR:-target}/debug/valkit}
RUNS=${RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VALKIT" sample-batches --competitions testdata/demo/competitions.toml --competition-id 1 --seed 42 \
    --tokenizer testdata/tokenizer -o "$work/batches.parquet" -q
models=$("$VALKIT" inspect --meta testdata/demo/models.parquet | sed -n 's/.*"rows":\([0-9]*\).*/\1/p')
run() {
    local start=$EPOCHREALTIME
    "$VALKIT" eval-losses --models testdata/demo/models.parquet --batches "$work/batches.parquet" \
        --out "$work/$1.parquet" -q "${@:2}"
    awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}
isolated=() inprocess=()
for i in $(seq "$RUNS"); do
    a=$(run isolated) b=$(run inprocess --no-isolation)
    isolated+=("$a") inprocess+=("$b")
    echo "run $i: isolated $a s, in-process $b s"
    cmp -s "$work/isolated.parquet" "$work/inprocess.parquet" || { echo "tables differ" >&2; exit 1; }
done
source scripts/bench/lib.sh
mi=$(median "${isolated[@]}") mp=$(median "${inprocess[@]}")
awk -v i="$mi" -v p="$mp" -v n="$models" 'BEGIN { printf "median over the %d models: isolated %.3f s, in-process %.3f s: %.1f ms per model\n", n, i, p, (i - p) * 1000 / n }'
