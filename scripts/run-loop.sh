#!/usr/bin/env bash
# One validator cycle, for cron: sync-metadata → fetch-models → sample-batches → eval-losses →
# compute-wins → set-weights, each stage's exit code acted on as SPEC §6 says.
#
#   */20 * * * *  cd /srv/valkit && NETWORK=finney NETUID=9 PROFILE=sn9 WALLET=validator \
#                 scripts/run-loop.sh >> /var/log/valkit.log 2>&1
#
# Settings (environment):
#   NETWORK      finney | test | local | ws://… — the chain to read and to send weights to.
#                Unset: read METAGRAPH (a stored metagraph table) and only preview the weights
#                (set-weights --dry-run); the log says so.
#   METAGRAPH    a metagraph table to use instead of sync-metadata (when NETWORK is unset).
#   NETUID       the subnet.   PROFILE (sn9 | sn37) or COMPETITIONS (a profile TOML file).
#   WALLET, HOTKEY, WALLET_PATH   the validator's hotkey (bittensor wallet layout).
#   WORKDIR      where steps and state live [./valkit-run]: steps/<UTC time>/ holds one step's
#                tables, steps/latest points at the last completed step (its tracker is carried
#                into the next), state/ holds the step counter, receipts and commit-reveal salts.
#   KEEP_STEPS   completed step directories kept [48]; older ones are removed.
#   VALKIT       the valkit binary [valkit].   SAMPLE_ARGS, EVAL_ARGS, FETCH_ARGS: extra flags.
#   SET_WEIGHTS_RETRIES, SET_WEIGHTS_RETRY_DELAY   retries of set-weights on exit 3 or 4 [3, 60 s].
#
# Exit status: 0 done (or another cycle holds the lock); otherwise the exit code of the stage
# that stopped the cycle (2 bad input, 4 a service unreachable); 3 when weights were not due yet.
set -uo pipefail

VALKIT=${VALKIT:-valkit}
WORKDIR=${WORKDIR:-./valkit-run}
NETUID=${NETUID:?set NETUID}
SET_WEIGHTS_RETRIES=${SET_WEIGHTS_RETRIES:-3}
SET_WEIGHTS_RETRY_DELAY=${SET_WEIGHTS_RETRY_DELAY:-60}
if [ -n "${COMPETITIONS:-}" ]; then
    rules=(--competitions "$COMPETITIONS")
else
    rules=(--profile "${PROFILE:?set PROFILE or COMPETITIONS}")
fi

log() { printf '%s run-loop: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
# Seconds since $1 (an $EPOCHREALTIME), to a tenth.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

mkdir -p "$WORKDIR/steps" "$WORKDIR/state" || exit 2
# Cron may start a cycle while the last one still runs: only one holds the lock.
exec 9>"$WORKDIR/state/run-loop.lock"
if ! flock -n 9; then
    log "another cycle holds $WORKDIR/state/run-loop.lock; not starting"
    exit 0
fi

# Runs one stage, logging its exit code and wall time. Exit 1 (some models failed, recorded as
# rows) lets the cycle go on; any other failure stops it with that stage's code.
stage() {
    local name=$1; shift
    local started=$EPOCHREALTIME code
    "$VALKIT" "$@" </dev/null
    code=$?
    log "$name: exit $code in $(since "$started") s"
    STAGE_CODE=$code
    if [ "$code" -ne 0 ] && [ "$code" -ne 1 ]; then
        log "cycle stopped at $name (exit $code)"
        exit "$code"
    fi
}

# A new directory per step, named by its UTC start time (suffixed if a step started this second).
step_base="$WORKDIR/steps/$(date -u +%Y%m%dT%H%M%SZ)"
step_dir=$step_base
suffix=1
while ! mkdir "$step_dir" 2>/dev/null; do
    [ "$suffix" -lt 100 ] || { log "cannot create a step directory under $WORKDIR/steps"; exit 2; }
    step_dir="$step_base-$suffix"
    suffix=$((suffix + 1))
done
previous="$WORKDIR/steps/latest"
tracker=()
if [ -f "$previous/tracker.parquet" ]; then
    tracker=(--tracker "$previous/tracker.parquet")
    log "carrying the tracker of $(readlink "$previous")"
else
    log "no completed step yet: starting without a tracker"
fi
step_number=$(cat "$WORKDIR/state/step" 2>/dev/null || echo 0)

if [ -n "${NETWORK:-}" ]; then
    stage sync-metadata sync-metadata --network "$NETWORK" --netuid "$NETUID" "${rules[@]}" \
        --out "$step_dir/metagraph.parquet" -q
else
    log "NETWORK is unset: using the stored metagraph ${METAGRAPH:?set NETWORK or METAGRAPH}, and weights are only previewed"
    cp "$METAGRAPH" "$step_dir/metagraph.parquet" || exit 2
fi
# The block the metagraph was read at (its `valkit.block` metadata) picks the competition.
block=$("$VALKIT" inspect --meta "$step_dir/metagraph.parquet" | sed -n 's/.*"provenance":{[^}]*"block":"\([0-9]*\)".*/\1/p')
competition=$("$VALKIT" profile step "${rules[@]}" --block "${block:?no block in the metagraph}" --step "$step_number") || exit 2
log "step $step_number at block $block evaluates competition $competition in $step_dir"

# shellcheck disable=SC2086 # the *_ARGS are word lists on purpose
stage fetch-models fetch-models "${rules[@]}" --metagraph "$step_dir/metagraph.parquet" "${tracker[@]}" \
    --out "$step_dir/models.parquet" -q ${FETCH_ARGS:-}
# shellcheck disable=SC2086
stage sample-batches sample-batches "${rules[@]}" --competition-id "$competition" \
    --metagraph "$step_dir/metagraph.parquet" --out "$step_dir/batches.parquet" -q ${SAMPLE_ARGS:-}
# shellcheck disable=SC2086
stage eval-losses eval-losses "${rules[@]}" --models "$step_dir/models.parquet" \
    --batches "$step_dir/batches.parquet" --out "$step_dir/losses.parquet" -q ${EVAL_ARGS:-}
stage compute-wins compute-wins "${rules[@]}" --competition-id "$competition" \
    --metagraph "$step_dir/metagraph.parquet" --losses "$step_dir/losses.parquet" "${tracker[@]}" \
    --out-dir "$step_dir" -q

# The step is complete: the next cycle carries its tracker.
ln -sfn "$(basename "$step_dir")" "$WORKDIR/steps/latest.new" && mv -T "$WORKDIR/steps/latest.new" "$previous" || exit 2
echo $((step_number + 1)) > "$WORKDIR/state/step.new" && mv "$WORKDIR/state/step.new" "$WORKDIR/state/step" || exit 2
# Old steps go, oldest first (names sort by time); the latest is never among them.
find "$WORKDIR/steps" -mindepth 1 -maxdepth 1 -type d -name '2*' | sort | head -n "-${KEEP_STEPS:-48}" | while read -r old; do
    rm -rf "$old" && log "removed old step $(basename "$old")"
done

# What the chain's next epoch would give these weights, in the log before they are sent: the
# validator's predicted vTrust and where its weights are clipped (never stops the cycle).
if [ -n "${NETWORK:-}" ]; then
    if prediction=$("$VALKIT" consensus --metagraph "$step_dir/metagraph.parquet" --weights "$step_dir/weights.parquet" \
        --wallet "${WALLET:-default}" --hotkey "${HOTKEY:-default}" ${WALLET_PATH:+--wallet-path "$WALLET_PATH"} \
        --clips "$step_dir/clips.parquet" -o "$step_dir/consensus.parquet" </dev/null 2>&1); then
        log "consensus: $(printf '%s\n' "$prediction" | grep -e '^with your weights' -e 'no validator permit')"
    else
        log "consensus: no prediction ($(printf '%s' "$prediction" | tail -n 1))"
    fi
fi
if [ -z "${NETWORK:-}" ]; then
    stage set-weights set-weights --weights "$step_dir/weights.parquet" --netuid "$NETUID" --dry-run
    exit 0
fi
# Weights: retried while too soon (3) or the chain is unreachable (4); never on bad input (2).
attempt=1
while :; do
    started=$EPOCHREALTIME
    "$VALKIT" set-weights --network "$NETWORK" --netuid "$NETUID" --weights "$step_dir/weights.parquet" \
        --wallet "${WALLET:-default}" --hotkey "${HOTKEY:-default}" ${WALLET_PATH:+--wallet-path "$WALLET_PATH"} \
        --state-dir "$WORKDIR/state" </dev/null
    code=$?
    log "set-weights: exit $code in $(since "$started") s (attempt $attempt)"
    case $code in
        0) exit 0 ;;
        3|4)
            if [ "$attempt" -ge "$SET_WEIGHTS_RETRIES" ]; then
                log "set-weights gave up after $attempt attempts; the next cycle sends this step's weights' successor"
                exit "$code"
            fi
            attempt=$((attempt + 1))
            sleep "$SET_WEIGHTS_RETRY_DELAY"
            ;;
        *) exit "$code" ;;
    esac
done
