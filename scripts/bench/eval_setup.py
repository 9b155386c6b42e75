#!/usr/bin/env python3
"""Writes a random Llama-shaped model (hidden 512, 8 layers, vocab 32000; ~60M parameters),
4 batches of 2048 tokens, and the valkit models/batches tables for scripts/bench/eval_losses.sh.
Needs torch and transformers (the model) and pyarrow (the tables) — pass two interpreters."""

import json
import random
import sys
from pathlib import Path

work, part = Path(sys.argv[1]), sys.argv[2]
SEQ, BATCHES = 2048, 4

if part == "model":
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                         num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=4096)
    model = LlamaForCausalLM(config)
    model.save_pretrained(work / "model", safe_serialization=True)
    rng = random.Random(1)
    (work / "batches.json").write_text(json.dumps([[rng.randrange(32000) for _ in range(SEQ)] for _ in range(BATCHES)]))
else:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write(path, columns, table):
        meta = {b"valkit.table": table.encode(), b"valkit.schema_version": b"1"}
        pq.write_table(pa.table(columns).replace_schema_metadata(meta), path)

    batches = json.loads((work / "batches.json").read_text())
    write(work / "batches.parquet", {"competition_id": [1] * len(batches), "task": ["BENCH"] * len(batches),
                                     "batch_index": list(range(len(batches))), "token_ids": batches,
                                     "context_len": [0] * len(batches), "source": ["bench"] * len(batches)}, "batches")
    write(work / "models.parquet", {"uid": [0], "hotkey": ["bench"], "competition_id": [1],
                                    "local_path": [str(work / "model")], "status": ["ok"]}, "models")
