#!/usr/bin/env bash
# eval-losses against PyTorch on this CPU: the same random Llama-shaped model (hidden 512,
# 8 layers, vocab 32000) and the same 4 x 2048 tokens, f32, one after the other in one run.
# TORCH_PYTHON: an interpreter with torch and transformers (pip install torch transformers);
# TABLES_PYTHON: one with pyarrow. Prints tokens/s, peak RSS and the ratio; checks the losses agree.
set -euo pipefail
cd "$(dirname "$0")/../.."
TORCH_PYTHON=${TORCH_PYTHON:-python3}
TABLES_PYTHON=${TABLES_PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$TORCH_PYTHON" scripts/bench/eval_setup.py "$work" model
"$TABLES_PYTHON" scripts/bench/eval_setup.py "$work" tables
cargo build --release --locked --quiet --bin valkit
/usr/bin/time -f "%e %M" -o "$work/rust.time" target/release/valkit -q eval-losses --json \
    --models "$work/models.parquet" --batches "$work/batches.parquet" --out "$work/losses.parquet" > "$work/rust.json"
/usr/bin/time -f "%e %M" -o "$work/torch.time" "$TORCH_PYTHON" scripts/bench/eval_torch.py "$work" > "$work/torch.json"
target/release/valkit inspect "$work/losses.parquet" --json > "$work/rust_losses.json"
"$TABLES_PYTHON" - "$work" <<'PY'
import json, sys
work = sys.argv[1]
rust, torch = json.load(open(f"{work}/rust.json")), json.load(open(f"{work}/torch.json"))
r_s, r_kb = open(f"{work}/rust.time").read().split()
t_s, t_kb = open(f"{work}/torch.time").read().split()
rows = sorted((json.loads(l) for l in open(f"{work}/rust_losses.json")), key=lambda r: r["batch_index"])
worst = max(abs(r["loss"] - t) / t for r, t in zip(rows, torch["losses"]))
tokens = torch["tokens"]
print(f"model: Llama hidden 512 x 8 layers, vocab 32000; {tokens} scored tokens (4 x 2048), f32, {torch['threads']} threads")
print(f"valkit eval-losses (candle): eval {rust['seconds']:.2f} s -> {tokens / rust['seconds']:,.0f} tok/s; process {float(r_s):.2f} s, peak RSS {int(r_kb) / 1024:.0f} MiB")
print(f"pytorch (transformers, sdpa): compute {torch['compute_s']:.2f} s -> {tokens / torch['compute_s']:,.0f} tok/s; process {float(t_s):.2f} s, peak RSS {int(t_kb) / 1024:.0f} MiB")
print(f"ratio candle / pytorch (tokens/s): {torch['compute_s'] / rust['seconds']:.2f}x; worst relative loss difference {worst:.1e}")
PY
