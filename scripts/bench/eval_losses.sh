#!/usr/bin/env bash
# eval-losses against PyTorch on this CPU: the same random Llama-shaped model, the same tokens,
# f32, both sides on the same threads. SHAPE picks the model (scripts/bench/eval_setup.py):
# small (hidden 512, 8 layers, vocab 32000, 4 x 2048 tokens; the default), 100k (hidden 768,
# 12 layers, vocab 100,352, 2 x 4096 tokens) or 100k-gqa (the same, 4 kv heads, tied). Each side
# runs RUNS times (default 3) in alternating order (v t, t v, v t, ...); the medians are printed:
#   whole process: wall time of `valkit eval-losses` against `python eval_torch.py` (imports,
#                  loading the safetensors and scoring on both sides);
#   in-process:    valkit's stage time (spawning its worker, loading, scoring) against torch's
#                  load + score time (after `import torch`);
#   compute:       the forward passes and losses alone on both sides (loading excluded).
# TORCH_PYTHON: an interpreter with torch and transformers; TABLES_PYTHON: one with pyarrow.
set -euo pipefail
cd "$(dirname "$0")/../.."
TORCH_PYTHON=${TORCH_PYTHON:-python3}
TABLES_PYTHON=${TABLES_PYTHON:-python3}
RUNS=${RUNS:-3}
SHAPE=${SHAPE:-small}
THREADS=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$TORCH_PYTHON" scripts/bench/eval_setup.py "$work" model "$SHAPE"
"$TABLES_PYTHON" scripts/bench/eval_setup.py "$work" tables "$SHAPE"
cargo build --release --locked --quiet --bin valkit

source scripts/bench/lib.sh
run_valkit() {
    timed valkit "$work/v.json" "$target/release/valkit" -q eval-losses --json \
        --models "$work/models.parquet" --batches "$work/batches.parquet" --out "$work/losses.parquet"
}
run_torch() { timed torch "$work/t.json" "$TORCH_PYTHON" scripts/bench/eval_torch.py "$work"; }
alternate "$RUNS" run_valkit run_torch
"$target/release/valkit" inspect "$work/losses.parquet" --json > "$work/rust_losses.json"
"$TABLES_PYTHON" - "$work" "$THREADS" "$TORCH_PYTHON" <<'PY'
import json, statistics, subprocess, sys
work, threads, torch_python = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [json.loads(l) for l in open(f"{work}/runs.jsonl")]
v = [r for r in runs if r["side"] == "valkit"]
t = [r for r in runs if r["side"] == "torch"]
med = lambda xs: statistics.median(xs)
tokens = t[0]["stage"]["tokens"]
rows = sorted((json.loads(l) for l in open(f"{work}/rust_losses.json")), key=lambda r: r["batch_index"])
worst = max(abs(r["loss"] - x) / x for r, x in zip(rows, t[0]["stage"]["losses"]))
versions = subprocess.run([torch_python, "-c", "import torch, transformers; print(torch.__version__, transformers.__version__)"], capture_output=True, text=True).stdout.split()
v_wall, t_wall = med([r["wall"] for r in v]), med([r["wall"] for r in t])
v_stage, t_in = med([r["stage"]["seconds"] for r in v]), med([r["stage"]["total_s"] for r in t])
t_compute = med([r["stage"]["compute_s"] for r in t])
v_compute = med([r["stage"]["compute_seconds"] for r in v])
print(f"model: {open(f'{work}/shape.txt').read()}; {tokens} scored tokens, f32; {threads} threads each side")
print(f"torch {versions[0]}, transformers {versions[1]} (sdpa); medians of {len(v)} runs per side, alternating")
print(f"whole process: valkit {v_wall:.2f} s ({tokens / v_wall:,.0f} tok/s), torch {t_wall:.2f} s ({tokens / t_wall:,.0f} tok/s): ratio {t_wall / v_wall:.2f}x")
print(f"in-process:    valkit {v_stage:.2f} s ({tokens / v_stage:,.0f} tok/s), torch {t_in:.2f} s ({tokens / t_in:,.0f} tok/s): ratio {t_in / v_stage:.2f}x")
print(f"compute:       valkit {v_compute:.2f} s ({tokens / v_compute:,.0f} tok/s), torch {t_compute:.2f} s ({tokens / t_compute:,.0f} tok/s): ratio {t_compute / v_compute:.2f}x")
print(f"peak RSS (median): valkit {med([r['kb'] for r in v]) / 1024:.0f} MiB, torch {med([r['kb'] for r in t]) / 1024:.0f} MiB")
print(f"all runs (s): valkit {[r['wall'] for r in v]}, torch {[r['wall'] for r in t]}; worst relative loss difference {worst:.1e}")
PY
