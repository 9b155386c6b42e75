#!/usr/bin/env python3
"""The PyTorch side of scripts/device/eval-gpu.sh, on the GPU host's python3 (torch, transformers,
pyarrow are in its image).

  eval_gpu.py check-setup WORK       tables for the tiny models and the bf16 reference's batches,
                                     and torch's bf16 losses on the GPU (logits upcast and not)
  eval_gpu.py bench-setup WORK       a random 1.1B Llama-shaped model (TinyLlama's shape) in
                                     bf16, 8 batches of 4,096 tokens, and their tables
  eval_gpu.py bench-torch WORK IMPL  torch's compute time on those batches with attention IMPL
                                     (sdpa, flash_attention_2), printed as JSON
"""

import json
import random
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

REPO = Path(__file__).resolve().parents[2]


def write(path, columns, table):
    meta = {b"valkit.table": table.encode(), b"valkit.schema_version": b"1"}
    pq.write_table(pa.table(columns).replace_schema_metadata(meta), path)


def tables(work, models, batches):
    """models: [(uid, path)]; batches: [(token_ids, context_len)]."""
    write(work / "batches.parquet", {"competition_id": [1] * len(batches), "task": ["GPU"] * len(batches),
                                     "batch_index": list(range(len(batches))), "token_ids": [b for b, _ in batches],
                                     "context_len": [c for _, c in batches], "source": ["eval-gpu"] * len(batches)}, "batches")
    write(work / "models.parquet", {"uid": [u for u, _ in models], "hotkey": [f"hk{u}" for u, _ in models],
                                    "competition_id": [1] * len(models), "local_path": [str(p) for _, p in models],
                                    "status": ["ok"] * len(models)}, "models")


def attention_impl():
    try:
        import flash_attn  # noqa: F401
        return "flash_attention_2"
    except ImportError:
        return "sdpa"


def check_setup(work):
    reference = json.loads((REPO / "testdata/models/reference_bf16.json").read_text())
    names = [n for n in reference["models"] if n != "bart"]  # BART's 128 positions end before 512 tokens
    batches = [(b["token_ids"], b["context_len"]) for b in reference["batches"]]
    tables(work, [(i, REPO / "testdata/models" / n) for i, n in enumerate(names)], batches)
    impl = attention_impl()
    out = {"attention": impl, "torch": torch.__version__, "models": {}}
    for uid, name in enumerate(names):
        model = AutoModelForCausalLM.from_pretrained(REPO / "testdata/models" / name, dtype=torch.bfloat16,
                                                     attn_implementation=impl).cuda().eval()
        upcast, never = [], []
        with torch.inference_mode():
            for ids, context in batches:
                x = torch.tensor([ids], device="cuda")
                logits = model(x).logits[0, max(context, 1) - 1:-1]
                targets = x[0, max(context, 1):]
                upcast.append(torch.nn.functional.cross_entropy(logits.float(), targets).item())
                never.append(torch.nn.functional.cross_entropy(logits, targets).item())
        out["models"][str(uid)] = {"name": name, "upcast": upcast, "never": never, "f32": reference["models"][name]["f32"]}
    (work / "torch_losses.json").write_text(json.dumps(out))


SEQ, BATCHES = 4096, 8
SHAPE = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
             num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=SEQ)


def bench_setup(work):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SHAPE)).to(torch.bfloat16)
    model.save_pretrained(work / "model", safe_serialization=True)
    rng = random.Random(1)
    batches = [[rng.randrange(SHAPE["vocab_size"]) for _ in range(SEQ)] for _ in range(BATCHES)]
    (work / "bench_batches.json").write_text(json.dumps(batches))
    tables(work, [(0, work / "model")], [(b, 0) for b in batches])
    c = SHAPE
    params = sum(p.numel() for p in model.parameters())
    per_token = 2 * (params - c["vocab_size"] * c["hidden_size"])  # matmuls: every weight but the embedding lookup
    attention = 2 * 2 * c["num_hidden_layers"] * c["hidden_size"] * (SEQ + 1) / 2  # QK and PV, causal
    (work / "bench_shape.json").write_text(json.dumps({"params": params, "tokens": BATCHES * (SEQ - 1),
                                                        "flops": BATCHES * SEQ * (per_token + attention), "shape": SHAPE}))


def bench_torch(work, impl):
    model = AutoModelForCausalLM.from_pretrained(work / "model", dtype=torch.bfloat16, attn_implementation=impl).cuda().eval()
    batches = json.loads((work / "bench_batches.json").read_text())
    runs = []
    with torch.inference_mode():
        for rep in range(4):  # the first is warm-up
            torch.cuda.synchronize()
            start = time.perf_counter()
            for b in batches:
                x = torch.tensor([b], device="cuda")
                torch.nn.functional.cross_entropy(model(x).logits[0, :-1], x[0, 1:]).item()
            torch.cuda.synchronize()
            runs.append(time.perf_counter() - start)
    print(json.dumps({"impl": impl, "compute_s": sorted(runs[1:])[1], "runs": runs[1:]}))


if __name__ == "__main__":
    command, work = sys.argv[1], Path(sys.argv[2])
    {"check-setup": lambda: check_setup(work), "bench-setup": lambda: bench_setup(work),
     "bench-torch": lambda: bench_torch(work, sys.argv[3])}[command]()
