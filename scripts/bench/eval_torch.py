#!/usr/bin/env python3
"""The PyTorch side of scripts/bench/eval_losses.sh: load the same safetensors, score the same
batches (forward over all positions, log-softmax, mean NLL), f32, inference mode, sdpa attention."""

import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

work = Path(sys.argv[1])
start = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(work / "model", torch_dtype=torch.float32, attn_implementation="sdpa").eval()
batches = json.loads((work / "batches.json").read_text())
loaded = time.perf_counter()
losses = []
with torch.inference_mode():
    for b in batches:
        ids = torch.tensor([b])
        logits = model(ids).logits[0, :-1].float()
        losses.append(torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item())
done = time.perf_counter()
tokens = sum(len(b) - 1 for b in batches)
print(json.dumps({"losses": losses, "tokens": tokens, "compute_s": done - loaded, "total_s": done - start, "threads": torch.get_num_threads()}))
