#!/usr/bin/env bash
# Submits one step's evaluation to Slurm: an array of N eval-losses shards, then compute-wins
# once all of them succeed (afterok; if one fails, the dependent job is cancelled, not left
# pending). Prints "ARRAY_JOB_ID WINS_JOB_ID" on stdout.
#
#   STEP_DIR=/shared/steps/20250101T000000Z PROFILE=sn9 VALKIT=/shared/bin/valkit \
#       DEVICE=cuda:0 DTYPE=bf16 EVAL_SBATCH_ARGS="--gres=gpu:1 --partition=gpu" \
#       scripts/slurm/submit-step.sh 8
#
# Settings: those of eval-array.sbatch and compute-wins.sbatch (STEP_DIR, PROFILE/COMPETITIONS,
# VALKIT, DEVICE, DTYPE, EVAL_ARGS, COMPETITION_ID, TRACKER, OUT_DIR, …), plus
#   EVAL_SBATCH_ARGS, WINS_SBATCH_ARGS   extra sbatch flags (word lists) for each job.
#   ARRAY_LIMIT   run at most this many shards at once (sbatch --array=…%LIMIT).
# Job logs go to STEP_DIR/slurm/.
set -euo pipefail
shards=${1:?usage: scripts/slurm/submit-step.sh SHARDS (with STEP_DIR and the rest in the environment)}
[[ $shards =~ ^[1-9][0-9]*$ ]] || { echo "SHARDS must be a positive integer, not $shards" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)

: "${STEP_DIR:?set STEP_DIR (the shared step directory)}"
[ -n "${PROFILE:-}${COMPETITIONS:-}" ] || { echo "set PROFILE or COMPETITIONS" >&2; exit 2; }
# Jobs may start in another directory than this shell's: make paths absolute.
STEP_DIR=$(realpath "$STEP_DIR")
if [ -n "${COMPETITIONS:-}" ]; then COMPETITIONS=$(realpath "$COMPETITIONS"); fi
if [[ ${VALKIT:-valkit} == */* ]]; then VALKIT=$(realpath "$VALKIT"); fi
SHARDS=$shards
export STEP_DIR COMPETITIONS VALKIT SHARDS
mkdir -p "$STEP_DIR/slurm"

# The array's first task id is 0 and its task count N, which eval-array.sbatch maps to --shard K/N.
# --export=ALL: some sites default SBATCH_EXPORT to NONE; the scripts read their settings from it.
# shellcheck disable=SC2086 # the *_SBATCH_ARGS are word lists
array_id=$(sbatch --parsable --export=ALL --array="0-$((shards - 1))${ARRAY_LIMIT:+%$ARRAY_LIMIT}" \
    --output="$STEP_DIR/slurm/eval-%A_%a.out" ${EVAL_SBATCH_ARGS:-} "$here/eval-array.sbatch")
array_id=${array_id%%;*}   # --parsable prints "id" or "id;cluster"
# shellcheck disable=SC2086
wins_id=$(sbatch --parsable --export=ALL --dependency="afterok:$array_id" --kill-on-invalid-dep=yes \
    --output="$STEP_DIR/slurm/wins-%j.out" ${WINS_SBATCH_ARGS:-} "$here/compute-wins.sbatch") || {
    echo "submitting compute-wins failed: cancelling the array $array_id, which nothing would score" >&2
    scancel "$array_id" || true
    exit 2
}
wins_id=${wins_id%%;*}
echo "submitted: eval-losses array $array_id ($shards shards), compute-wins $wins_id after it; logs in $STEP_DIR/slurm/" >&2
echo "$array_id $wins_id"
