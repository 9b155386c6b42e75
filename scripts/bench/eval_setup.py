#!/usr/bin/env python3
"""Writes a random Llama-shaped model, its batches, and the valkit models/batches tables for
scripts/bench/eval_losses.sh. Needs torch and transformers (the model) and pyarrow (the tables) —
pass two interpreters. The shape is argv[3] (one of SHAPES); its description goes to shape.txt."""

import json
import random
import sys
from pathlib import Path

work, part = Path(sys.argv[1]), sys.argv[2]
SHAPES = {
    # hidden 512, 8 layers, vocab 32000 (~60M parameters), 4 x 2048 tokens
    "small": dict(config=dict(vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                              num_attention_heads=8, num_key_value_heads=8), seq=2048, batches=4),
    # issue 13's production-like shape: hidden 768, 12 layers, vocab 100,352 (~240M), 2 x 4096 tokens
    "100k": dict(config=dict(vocab_size=100352, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                             num_attention_heads=12, num_key_value_heads=12), seq=4096, batches=2),
    # the same with grouped-query attention (4 key/value heads) and tied embeddings
    "100k-gqa": dict(config=dict(vocab_size=100352, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                                 num_attention_heads=12, num_key_value_heads=4, tie_word_embeddings=True), seq=4096, batches=2),
}
shape = SHAPES[sys.argv[3] if len(sys.argv) > 3 else "small"]
SEQ, BATCHES, VOCAB = shape["seq"], shape["batches"], shape["config"]["vocab_size"]

if part == "model":
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**shape["config"], max_position_embeddings=SEQ)
    model = LlamaForCausalLM(config)
    model.save_pretrained(work / "model", safe_serialization=True)
    rng = random.Random(1)
    (work / "batches.json").write_text(json.dumps([[rng.randrange(VOCAB) for _ in range(SEQ)] for _ in range(BATCHES)]))
    c = shape["config"]
    kv = "" if c["num_key_value_heads"] == c["num_attention_heads"] else f", {c['num_key_value_heads']} kv heads"
    tied = ", tied" if c.get("tie_word_embeddings") else ""
    (work / "shape.txt").write_text(f"Llama hidden {c['hidden_size']} x {c['num_hidden_layers']} layers{kv}{tied}, "
                                    f"vocab {VOCAB}, {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters; "
                                    f"{BATCHES} x {SEQ} tokens")
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
