#!/usr/bin/env python3
"""Writes a benchmark corpus (20,000 fixture documents in 4 JSONL configs) and a one-task
competition profile sampling all of it into WORKDIR, for scripts/bench/tokenize.sh."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import datasets_fixture as fx  # noqa: E402

ROWS_PER_CONFIG = 5000
CONFIGS = ["a", "b", "c", "d"]


def main() -> None:
    work = Path(sys.argv[1])
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for config in CONFIGS:
        lines = [json.dumps({"text": fx.row_text("bench", config, "train", i)}) for i in range(ROWS_PER_CONFIG)]
        (corpus / f"{config}.jsonl").write_text("\n".join(lines) + "\n")
    pages = len(CONFIGS) * ROWS_PER_CONFIG // 50
    (work / "bench.toml").write_text(f"""name = "bench"
netuid = 1
[subnet]
alpha = 0.5
sample_min = 1
weights_version_key = 1
sync_cadence = 1
max_batches_per_task = 100000
[[schedule]]
block = 0
competitions = [{{ competition = "C", reward = 1.0 }}]
[competitions.C]
id = 1
max_params = 1
max_bytes = 1
sequence_length = 4096
architectures = []
eval_block_delay = 0
epsilon = {{ kind = "fixed", value = 0.005 }}
weighting = {{ kind = "softmax", temperature = 0.01 }}
tasks = [{{ name = "ALL", method = "text-loss", weight = 1.0, pages = {pages}, dataset = {{ loader = "local", name = "corpus", rows_per_page = 50 }} }}]
""")


if __name__ == "__main__":
    main()
