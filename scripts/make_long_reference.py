#!/usr/bin/env python3
"""Writes testdata/models-long/: PyTorch's per-token float32 NLLs (eager attention) of the tiny
architectures of scripts/make_tiny_models.py on windows of 1,100 and 4,096 tokens — several loss chunks, several attention blocks, sliding windows far shorter than the
sequence, Gemma2's alternating local/global layers — plus one SN37-shaped reference-loss case of
16,384 tokens (12,288 context, 4,096 scored) on the Llama variant. The models are the same
weights as testdata/models/ (same seed, same order; checked here), so only BART, whose positions
are learned, gets a copy with room for 4,096 positions.

Run once by a developer, never in CI (the 16k case needs ~12 GB for eager attention):
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.15.0 transformers
    /tmp/torchenv/bin/python scripts/make_long_reference.py
The output is committed; tests/eval_losses.rs compares valkit token by token.
"""

import copy
import json
import random
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_models import VARIANTS, VOCAB, make_model  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "testdata" / "models-long"
LENGTHS = (1100, 4096)
LONG_MODEL, LONG_TOKENS, LONG_CONTEXT = "llama", 16384, 12288


def token_nlls(model, ids, context_len=0):
    with torch.inference_mode():
        logits = model(torch.tensor([ids]), use_cache=False).logits[0].float()
    nll = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="none")
    if context_len:
        nll = nll[context_len - 1:]
    # Shortest repr of each float32, so the JSON reads back to the same float32.
    return ["#" + str(np.float32(x)) for x in nll.tolist()], float(nll.mean())


def main():
    torch.manual_seed(0)
    rng = random.Random(11)
    batches = [{"token_ids": [rng.randrange(VOCAB) for _ in range(n)], "context_len": 0} for n in LENGTHS]
    long_batch = {"token_ids": [rng.randrange(VOCAB) for _ in range(LONG_TOKENS)], "context_len": LONG_CONTEXT}
    reference = {"torch": torch.__version__, "transformers": transformers.__version__, "attention": "eager",
                 "batches": batches, "long_batch": {"model": LONG_MODEL, **long_batch}, "models": {}}
    for name, base in VARIANTS.items():
        config = copy.deepcopy(base)
        # BART's positions are learned: room for the 4,096-token window; RoPE models for 16k.
        config.max_position_embeddings = 4096 if name == "bart" else LONG_TOKENS
        model = make_model(config)
        if name == "bart":
            model.save_pretrained(OUT / name, safe_serialization=True)
        else:
            # RoPE models take any length: the short-context snapshot is the same model, byte for byte.
            with tempfile.TemporaryDirectory() as tmp:
                model.save_pretrained(tmp, safe_serialization=True)
                same = (Path(tmp) / "model.safetensors").read_bytes() == (OUT.parent / "models" / name / "model.safetensors").read_bytes()
            assert same, f"{name}: not the weights of testdata/models"
        entry = {"architecture": type(model).__name__, "nlls": [], "losses": []}
        for b in batches:
            nlls, mean = token_nlls(model, b["token_ids"])
            entry["nlls"].append(nlls)
            entry["losses"].append(mean)
        if name == LONG_MODEL:
            nlls, mean = token_nlls(model, long_batch["token_ids"], LONG_CONTEXT)
            entry["long_nlls"], entry["long_loss"] = nlls, mean
        reference["models"][name] = entry
        print(name, entry["losses"], entry.get("long_loss", ""), flush=True)
    text = json.dumps(reference, separators=(",", ":"))
    # The NLLs went in as "#<shortest float32 form>" strings; they come out as plain numbers.
    (OUT / "reference.json").write_text(re.sub(r'"#([^"]*)"', r"\1", text) + "\n")


if __name__ == "__main__":
    main()
