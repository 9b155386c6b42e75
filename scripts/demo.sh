#!/usr/bin/env bash
# `make demo`, part 1: two validator cycles of the demo subnet, run by scripts/run-loop.sh as cron
# would (no terminal, no stdin), against local stand-ins only: the demo hub (examples/demo_hub.rs)
# serving six tiny models, local corpora for the evaluation data, and — when node is installed —
# a real subtensor runtime (../shared/chain/) where the subnet is registered, the miners commit
# their models and the validator's weights are really set. Without node the cycle reads a stored
# metagraph and only previews the weights, and says so.
#
#   scripts/demo.sh OUT_DIR      (VALKIT and DEMO_HUB name the built binaries;
#                                 VALKIT_DEMO_CHAIN=0 runs without the chain even with node)
set -euo pipefail
out=${1:?usage: scripts/demo.sh OUT_DIR}
VALKIT=$(realpath "${VALKIT:?}")
DEMO_HUB=$(realpath "${DEMO_HUB:?}")
root=$(cd "$(dirname "$0")/.." && pwd)
chain_script="$root/../shared/chain/start-chain.sh"

rm -rf "$out/cycle" && mkdir -p "$out/cycle"
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
"$DEMO_HUB" "$out/cycle" ${chain_url:+"$chain_url"} &
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
export HF_HUB_CACHE="$out/cycle/hf-cache" HF_HUB_OFFLINE=
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
    echo "== cycle $cycle: scripts/run-loop.sh (as cron runs it: no terminal, no stdin)"
    if ! setsid "$root/scripts/run-loop.sh" </dev/null >"$out/cycle/run-$cycle.log" 2>&1; then
        cat "$out/cycle/run-$cycle.log" >&2
        exit 2
    fi
    sed -n 's/^[0-9T:-]*Z run-loop: /  /p' "$out/cycle/run-$cycle.log"
done

latest="$WORKDIR/steps/latest"
echo
echo "== what the validator concluded (the last step's wins and weights)"
"$VALKIT" inspect "$latest/wins.parquet"
echo
"$VALKIT" inspect "$latest/weights.parquet"
if [ -n "$chain_url" ]; then
    echo
    echo "== what reached the chain (the receipts set-weights appended)"
    "$VALKIT" inspect "$WORKDIR/state/receipts.parquet"
fi
