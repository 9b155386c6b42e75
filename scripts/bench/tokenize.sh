#!/usr/bin/env bash
# Tokenise-and-pack throughput: `valkit sample-batches` against Python `tokenizers` running
# upstream's loop (scripts/bench/tokenize_python.py), same corpus, same tokenizer, same pages.
# Each side runs RUNS times (default 3) in alternating order; the medians are printed:
#   whole process: wall time of each process (valkit also writes its Parquet table);
#   in-process:    Python's own timer (after interpreter start and `import tokenizers`), for scale.
# PYTHON: an interpreter with `pip install tokenizers==0.23.3`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
RUNS=${RUNS:-3}
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" scripts/bench/tokenize_setup.py "$work"
cargo build --release --locked --quiet --bin valkit

source scripts/bench/lib.sh
run_valkit() {
    timed valkit "$work/v.out" "$target/release/valkit" -q sample-batches \
        --competitions "$work/bench.toml" --competition-id 1 --seed 42 \
        --tokenizer testdata/tokenizer -o "$work/b.parquet"
}
run_python() { timed python "$work/py.json" "$PYTHON" scripts/bench/tokenize_python.py "$work"; }
alternate "$RUNS" run_valkit run_python
"$PYTHON" - "$work" "$PYTHON" <<'PY'
import json, statistics, subprocess, sys
work, python = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(f"{work}/runs.jsonl")]
v = [r for r in runs if r["side"] == "valkit"]
p = [r for r in runs if r["side"] == "python"]
med = statistics.median
ref = p[0]["stage"]
tokens = ref["tokens"]
version = subprocess.run([python, "-c", "import tokenizers; print(tokenizers.__version__)"], capture_output=True, text=True).stdout.strip()
v_wall, p_wall, p_in = med([r["wall"] for r in v]), med([r["wall"] for r in p]), med([r["stage"]["seconds"] for r in p])
print(f"corpus: {ref['docs']} documents, {tokens} tokens, {ref['windows']} windows of 4096; python tokenizers {version}; medians of {len(v)} runs per side, alternating")
print(f"whole process: valkit {v_wall:.2f} s ({tokens / v_wall:,.0f} tok/s), python {p_wall:.2f} s ({tokens / p_wall:,.0f} tok/s): ratio {p_wall / v_wall:.2f}x")
print(f"python in-process timer: {p_in:.2f} s ({tokens / p_in:,.0f} tok/s)")
print(f"peak RSS (median): valkit {med([r['kb'] for r in v]) / 1024:.0f} MiB, python {med([r['kb'] for r in p]) / 1024:.0f} MiB")
print(f"all runs (s): valkit {[r['wall'] for r in v]}, python {[r['wall'] for r in p]}")
PY
