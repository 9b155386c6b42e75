#!/usr/bin/env bash
# Tokenise-and-pack throughput, valkit against Python `tokenizers` running upstream's loop, on the
# same corpus with the same tokenizer, one after the other in one run. Needs python3 with
# `pip install tokenizers==0.23.3`. Prints tokens/s of each, peak RSS, and the ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/bench/tokenize_setup.py "$work"
cargo build --release --locked --quiet --bin valkit
runs=3
best_rust=999999; best_py=999999
for _ in $(seq $runs); do
    /usr/bin/time -f "%e %M" -o "$work/rust.time" target/release/valkit -q sample-batches \
        --competitions "$work/bench.toml" --competition-id 1 --seed 42 \
        --tokenizer testdata/tokenizer -o "$work/b.parquet"
    read -r rust_s rust_kb < "$work/rust.time"
    /usr/bin/time -f "%e %M" -o "$work/py.time" python3 scripts/bench/tokenize_python.py "$work" > "$work/py.json"
    read -r _ py_kb < "$work/py.time"
    py_s=$(python3 -c "import json; print(json.load(open('$work/py.json'))['seconds'])")
    best_rust=$(python3 -c "print(min($best_rust, $rust_s))"); best_py=$(python3 -c "print(min($best_py, $py_s))")
done
python3 - "$work" "$best_rust" "$best_py" "$rust_kb" "$py_kb" <<'PY'
import json, sys
work, rust_s, py_s, rust_kb, py_kb = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ref = json.load(open(f"{work}/py.json"))
tokens = ref["tokens"]
print(f"corpus: {ref['docs']} documents, {tokens} tokens, {ref['windows']} windows of 4096 (best of 3 runs)")
print(f"valkit sample-batches (whole process, incl. Parquet write): {rust_s:.3f} s  {tokens / rust_s:,.0f} tok/s  peak RSS {rust_kb / 1024:.0f} MiB")
print(f"python tokenizers, upstream loop (in-process timer):        {py_s:.3f} s  {tokens / py_s:,.0f} tok/s  peak RSS {py_kb / 1024:.0f} MiB")
print(f"ratio valkit / python: {py_s / rust_s:.2f}x")
PY
