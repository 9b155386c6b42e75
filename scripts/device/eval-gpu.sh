#!/usr/bin/env bash
# eval-losses on a GPU host, in one call (the device tool's `run`; see scripts/device/README.md):
#   1. bf16 check: the tiny models of testdata/models on the reference batches, valkit
#      (`--device cuda:0 --dtype bf16`, logits upcast and not) against PyTorch on the same GPU
#      (flash_attention_2 when installed, else sdpa, whose bf16 kernel rounds where flash does);
#   2. speed: a random 1.1B Llama-shaped model (TinyLlama's shape), 8 x 4,096 tokens in bf16:
#      valkit's compute time (median of 3 runs after a warm-up) against torch's (sdpa, and
#      flash-attn 2 when installed), tok/s and MFU against the H200's dense bf16 989 TFLOP/s.
# Writes $OUT/eval-gpu.json (or ./eval-gpu.json) and prints a short table last.
#
# The GPU host has no Rust toolchain and no network: carry a CUDA build of valkit, built here by
# scripts/device/README.md's commands (a stripped release build with --features cuda), and pass
# VALKIT_BIN=target/valkit-cuda (the run tool's `carry`). It links the CUDA 13 libraries
# of the host's torch wheels (nvidia/cu13/lib), found below.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-.}
bin=${VALKIT_BIN:-target/valkit-cuda}
py=${PYTHON:-python3}
if [ ! -x "$bin" ]; then
    if command -v cargo > /dev/null; then
        cargo build --release --locked --features cuda --bin valkit && bin=${CARGO_TARGET_DIR:-target}/release/valkit
    else
        echo "eval-gpu: no valkit binary at $bin and no cargo to build one (see the header)" >&2
        exit 2
    fi
fi
libs=$("$py" -c 'import nvidia, pathlib; print(":".join(sorted({str(p.parent) for d in nvidia.__path__ for p in pathlib.Path(d).rglob("lib*.so*")})))')
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$work/gpu.txt"

echo "== bf16 check (tiny models)"
"$py" scripts/device/eval_gpu.py check-setup "$work"
for mode in always never; do
    "$bin" -q eval-losses --json --device cuda:0 --dtype bf16 --upcast-logits $mode \
        --models "$work/models.parquet" --batches "$work/batches.parquet" --out "$work/losses-$mode.parquet"
    "$bin" inspect "$work/losses-$mode.parquet" --json > "$work/losses-$mode.json"
done

echo "== speed (1.1B, 8 x 4096 tokens)"
"$py" scripts/device/eval_gpu.py bench-setup "$work"
for i in 0 1 2 3; do  # the first is warm-up
    "$bin" -q eval-losses --json --device cuda:0 --dtype bf16 \
        --models "$work/models.parquet" --batches "$work/batches.parquet" --out "$work/bench-$i.parquet" >> "$work/valkit-bench.jsonl"
done
"$py" scripts/device/eval_gpu.py bench-torch "$work" sdpa > "$work/torch-sdpa.json"
if "$py" -c 'import flash_attn' 2> /dev/null; then
    "$py" scripts/device/eval_gpu.py bench-torch "$work" flash_attention_2 > "$work/torch-flash.json"
fi

"$py" - "$work" "$out" <<'PY'
import json, statistics, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
torch_losses = json.loads((work / "torch_losses.json").read_text())
result = {"gpu": (work / "gpu.txt").read_text().strip(), "torch": torch_losses["torch"], "reference_attention": torch_losses["attention"]}
for mode, key in [("always", "upcast"), ("never", "never")]:
    rows = [json.loads(l) for l in (work / f"losses-{mode}.json").read_text().splitlines()]
    errors, gaps = [], []
    for r in rows:
        want = torch_losses["models"][str(r["uid"])]
        ref = want[key][r["batch_index"]]
        errors.append(abs(r["loss"] - ref) / ref)
        gaps.append(abs(want["f32"][r["batch_index"]] - ref) / ref)
    result[f"bf16_{key}"] = {"batches": len(errors), "median_rel_error": statistics.median(errors), "max_rel_error": max(errors),
                             "f32_median_gap": statistics.median(gaps), "equal": sum(e == 0 for e in errors)}
shape = json.loads((work / "bench_shape.json").read_text())
valkit = [json.loads(l)["compute_seconds"] for l in (work / "valkit-bench.jsonl").read_text().splitlines()][1:]
sides = {"valkit": statistics.median(valkit)}
for name in ["sdpa", "flash"]:
    f = work / f"torch-{name}.json"
    if f.exists():
        sides[f"torch_{name}"] = json.loads(f.read_text())["compute_s"]
result["speed"] = {"model": shape["shape"], "params": shape["params"], "tokens": shape["tokens"], "valkit_runs_s": valkit,
                   **{k: {"compute_s": s, "tok_s": shape["tokens"] / s, "mfu": shape["flops"] / s / 989e12} for k, s in sides.items()}}
(out / "eval-gpu.json").write_text(json.dumps(result, indent=1))
print(json.dumps(result, indent=1))
for k, v in result["speed"].items():
    if isinstance(v, dict) and "tok_s" in v:
        print(f"{k:12s} {v['compute_s']:8.2f} s {v['tok_s']:10.0f} tok/s  MFU {v['mfu']:.1%}")
for key in ["bf16_upcast", "bf16_never"]:
    r = result[key]
    print(f"{key}: median rel error {r['median_rel_error']:.1e} (f32 gap {r['f32_median_gap']:.1e}), max {r['max_rel_error']:.1e}, {r['equal']}/{r['batches']} equal")
PY
