#!/usr/bin/env bash
# `make demo`. Part 1: two validator cycles of the demo subnet, run by scripts/run-loop.sh as cron
# would (no terminal, no stdin), against local stand-ins only: the demo hub (examples/demo_hub.rs)
# serving six tiny models (and a miner's copy of one), local corpora for the evaluation data,
# and — when node is installed — a real subtensor runtime (../shared/chain/) where the subnet is
# registered, the miners commit their models and the validator's weights are really set. Without node the cycle reads a stored
# metagraph and only previews the weights, and says so. Part 2: an SN9 step re-scored offline
# from stored losses. Both end in an HTML report.
#
#   scripts/demo.sh OUT_DIR      (VALKIT and DEMO_HUB name the built binaries;
#                                 VALKIT_DEMO_CHAIN=0 runs without the chain even with node)
set -euo pipefail
out=${1:?usage: scripts/demo.sh OUT_DIR}
VALKIT=$(realpath "${VALKIT:?}")
DEMO_HUB=$(realpath "${DEMO_HUB:?}")
root=$(cd "$(dirname "$0")/.." && pwd)
chain_script="$root/../shared/chain/start-chain.sh"

rm -rf "$out/cycle" "$out/sn9" && mkdir -p "$out/cycle"
out=$(realpath "$out")
pids=()
chain_port=
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$chain_port" ]; then "$chain_script" stop "$chain_port" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

free_port() {
    local port
    for port in $(seq 19944 20044); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    return 1
}

say() { printf '%s\n' "$@"; }
# Prints a valkit command as a reader would type it (paths relative to the checkout), then runs it.
show() { printf '$ valkit %s\n' "${*:2}" | sed "s#$root/##g"; "$@"; }

say "" "valkit demo: a Bittensor model-training subnet's validator, end to end, on this machine." \
    "Simulated: the chain (a local subtensor runtime), the Hugging Face hub (six tiny models of" \
    "six architectures, one re-uploaded by a copy-cat) and the evaluation data (local text corpora)." \
    "Nothing is downloaded." ""
say "== part 1: two validator cycles of a demo subnet (netuid 2), as cron runs them"
chain_url=
if [ "${VALKIT_DEMO_CHAIN:-1}" = 0 ]; then
    echo "VALKIT_DEMO_CHAIN=0: no local chain; the cycle reads the stored metagraph and set-weights"
    echo "only previews what it would send (--dry-run)."
elif command -v node >/dev/null && command -v npm >/dev/null && [ -x "$chain_script" ]; then
    chain_port=$(free_port)
    echo "starting a local subtensor chain on port $chain_port (the first start installs chopsticks, ~1 min)..."
    if ! chain_url=$("$chain_script" restart "$chain_port"); then
        echo "the local chain did not start (see above): the cycle reads the stored metagraph instead"
        chain_url=
    fi
else
    echo "node/npm or ../shared/chain is missing: no local chain; the cycle reads the stored metagraph"
    echo "and set-weights only previews what it would send (--dry-run)."
fi

echo "starting the demo hub${chain_url:+ and building the demo subnet on the chain (about 30 s)}..."
"$DEMO_HUB" "$root" "$out/cycle" ${chain_url:+"$chain_url"} &
pids+=($!)
for _ in $(seq 1200); do
    [ -s "$out/cycle/hub.url" ] && break
    kill -0 "${pids[0]}" 2>/dev/null || { echo "demo_hub failed" >&2; exit 2; }
    sleep 0.1
done
[ -s "$out/cycle/hub.url" ] || { echo "the demo hub did not come up" >&2; exit 2; }

export VALKIT NETUID=2 COMPETITIONS="$root/testdata/demo/competitions.toml" WORKDIR="$out/cycle/run"
export HF_ENDPOINT
HF_ENDPOINT=$(cat "$out/cycle/hub.url")
# A token, as validators set one: the hub gets it, its CDN must not.
export HF_HUB_CACHE="$out/cycle/hf-cache" HF_HUB_OFFLINE= HF_TOKEN=hf_demo_not_a_real_token
export SAMPLE_ARGS="--tokenizer $root/testdata/tokenizer" SET_WEIGHTS_RETRY_DELAY=2
if [ -n "$chain_url" ]; then
    export NETWORK="$chain_url" WALLET=validator WALLET_PATH="$out/cycle/wallets"
else
    export METAGRAPH="$out/cycle/metagraph.parquet"
fi
for cycle in 1 2; do
    if [ "$cycle" -gt 1 ] && [ -n "$chain_url" ]; then
        # chopsticks builds a block only per transaction; a real chain moves on every 12 s, and
        # the weights rate limit counts blocks, so let one go by between the cycles.
        curl -fsS -H 'Content-Type: application/json' "${chain_url/ws:/http:}" \
            -d '{"id":1,"jsonrpc":"2.0","method":"dev_newBlock","params":[{"count":1}]}' >/dev/null
    fi
    echo
    echo "-- cycle $cycle: scripts/run-loop.sh (no terminal, no stdin); each line: a stage, its exit code, its wall time"
    if ! setsid "$root/scripts/run-loop.sh" </dev/null >"$out/cycle/run-$cycle.log" 2>&1; then
        cat "$out/cycle/run-$cycle.log" >&2
        exit 2
    fi
    sed -n 's/^[0-9T:-]*Z run-loop: /  /p' "$out/cycle/run-$cycle.log"
    if [ "$cycle" = 1 ] && [ -s "$out/cycle/hub-requests.log" ]; then
        log="$out/cycle/hub-requests.log"
        # Whole-file GETs are downloads; ranged ones read the safetensors headers first.
        lfs=$(grep '^CDN GET /repos/' "$log" | grep -vc ' \[bytes=' || true)
        xet=$(grep '^CDN GET /xet-bridge-us/' "$log" | grep -vc ' \[bytes=' || true)
        ranges=$(grep -c '^CDN GET .* \[bytes=' "$log" || true)
        leaked=$(sed -n 's/^cdn-authorized //p' "$log")
        echo "  the hub redirected every weight file to its CDN (a 302, as huggingface.co does): $lfs downloads from"
        echo "  LFS storage and $xet from the Xet bridge, each checked against its sha256, after $ranges header"
        echo "  ranges; requests that carried the validator's HF_TOKEN to the CDN: $leaked"
    fi
done

latest="$WORKDIR/steps/latest"
say "" "-- what the validator concluded in its last step" \
    "score: the model's mean loss (lower is better). epsilon_adv: how much lower a later model's loss" \
    "must be to beat this one (earlier commits are protected). win_rate: the share of competitive" \
    "opponents it beat. tracker_weight: its weight in the competition, a moving average of steps."
show "$VALKIT" inspect "$latest/wins.parquet" --columns uid,commit_block,score,epsilon_adv,wins,win_rate,tracker_weight,top
say "" "The subnet weights; weight_u16 is what set-weights sends (max-scaled to 65535, as the SDK does):"
show "$VALKIT" inspect "$latest/weights.parquet" --columns uid,hotkey,weight,weight_u16
first=$(ls -d "$WORKDIR"/steps/2* | head -n 1)
say "" "-- a copy-cat: the last miner re-uploaded the first miner's model as copycat/llama. Its secure" \
    "hash differs (its own hotkey), its model hash does not, so in the first step (every model in it)" \
    "eval-losses evaluated that model once and gave the copy its own rows of the one evaluation" \
    "(evaluated_as); the copy then lost to the earlier commit by the epsilon rule, as any copy does:"
show "$VALKIT" inspect "$first/models.parquet" --columns uid,repo_id,model_hash,status,in_step
say "\$ valkit inspect ${first#"$root/"}/losses.parquet --csv --columns uid,evaluated_as,task,batch_index,loss  # the copy's first rows"
"$VALKIT" inspect "$first/losses.parquet" --csv --columns uid,evaluated_as,task,batch_index,loss | awk -F, '(NR == 1 || $2 != "") && n++ < 4'
if [ -n "$chain_url" ]; then
    say "" "-- what reached the chain: set-weights appends a receipt per extrinsic. The demo subnet has" \
        "commit-reveal on, as every subnet has had since 2025: the weights go out drand-timelocked" \
        "(commit_crv3_weights on this runtime, spec 293), and the chain would apply them itself at" \
        "reveal_block once drand's pulse for reveal_round is on chain. This local chain has no drand" \
        "pulses, so it never reveals: a later run would record the commit lost, saying so."
    show "$VALKIT" inspect "$WORKDIR/state/receipts.parquet" --columns action,uid,block,reveal_round,reveal_block,uids,values
fi
"$VALKIT" -q report "$WORKDIR"/steps/2* -o "$out/cycle-report.html"

sn9="$out/sn9"
say "" "== part 2: an SN9 step re-scored offline from stored losses (no GPU, no chain)" \
    "Competition 4 of SN9 at block 5,200,000, 12 miners, made-up losses: uid 1 has led since" \
    "block 5,190,000; uid 5 committed a model 1% better at 5,199,000, uid 4 one only 0.1% better;" \
    "uids 2 and 3 re-upload uid 1's model; uid 6's model failed to load. Watch who wins and why."
show "$VALKIT" compute-wins --profile sn9 --competition-id 4 --metagraph "$root/testdata/demo/metagraph.parquet" \
    --losses "$root/testdata/demo/losses.parquet" --tracker "$root/testdata/demo/tracker.parquet" --out-dir "$sn9"
show "$VALKIT" inspect "$sn9/wins.parquet"
say "" "uid 5's 1% beats uid 1's epsilon advantage; uid 4's 0.1% does not. The copies (2, 3) and the" \
    "failure (6) leave the competition; uid 13 keeps a third of the subnet weight through" \
    "competition 2's tracker, which this step did not evaluate."
cp "$root/testdata/demo/losses.parquet" "$root/testdata/demo/models.parquet" "$sn9/"
"$VALKIT" -q report "$sn9"

say "" "== reports: one self-contained HTML page per step, with charts (open them in a browser)" \
    "  $out/sn9/report.html          the SN9 step: who won and why" \
    "  $out/cycle-report.html        the demo subnet's last cycle, and its weights over both cycles"
