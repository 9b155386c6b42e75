#!/usr/bin/env python3
"""Writes testdata/models/: tiny random causal LMs, one per architecture variant eval-losses must
get right, token batches, and PyTorch's float32 losses on them (text loss and reference loss).

Run once by a developer, never in CI:
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.15.0 transformers==5.23.0
    /tmp/torchenv/bin/python scripts/make_tiny_models.py
The output is committed. 2-D weights are scaled up so that losses are far from ln(vocab), and
transformers 5 writes `rope_theta` under `rope_parameters` — the trap valkit's loader must handle.
"""

import json
import random
from pathlib import Path

import torch
import transformers
from transformers import (AutoModelForCausalLM, BartConfig, FalconConfig, Gemma2Config, GemmaConfig, GPTNeoXConfig, LlamaConfig,
                          MistralConfig, Phi3Config, PhiConfig, Qwen2Config)

OUT = Path(__file__).resolve().parent.parent / "testdata" / "models"
VOCAB = 600  # testdata/tokenizer's vocabulary, so the demo can score sampled batches

COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=512, rms_norm_eps=1e-5)

VARIANTS = {
    "llama": LlamaConfig(**COMMON, num_key_value_heads=4),
    "llama-gqa-tied-theta": LlamaConfig(**COMMON, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=500000.0),
    "llama-head-dim-bias": LlamaConfig(**{**COMMON, "num_attention_heads": 2}, num_key_value_heads=1, head_dim=48,
                                       attention_bias=True, mlp_bias=True),
    "llama3-rope-scaling": LlamaConfig(**COMMON, num_key_value_heads=2, rope_theta=500000.0,
                                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "mistral-sliding-window": MistralConfig(**COMMON, num_key_value_heads=2, sliding_window=16),
    "qwen2": Qwen2Config(**COMMON, num_key_value_heads=2, tie_word_embeddings=True),
    # Appended after the others so that their weights (drawn in order from one seed) stay the same.
    "gemma": GemmaConfig(**COMMON, num_key_value_heads=1, head_dim=32, hidden_activation="gelu_pytorch_tanh"),
    "gemma2": Gemma2Config(**COMMON, num_key_value_heads=2, head_dim=16, sliding_window=16,
                           attn_logit_softcapping=50.0, final_logit_softcapping=30.0, query_pre_attn_scalar=24),
    "phi3-partial-rotary": Phi3Config(**COMMON, num_key_value_heads=2, partial_rotary_factor=0.5, sliding_window=32,
                                      pad_token_id=0),
    "gpt-neox": GPTNeoXConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, max_position_embeddings=512, rotary_pct=0.25),
    "gpt-neox-sequential": GPTNeoXConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, max_position_embeddings=512, rotary_pct=0.5,
                                         use_parallel_residual=False),
    "phi": PhiConfig(**{k: v for k, v in COMMON.items() if k != "rms_norm_eps"}, num_key_value_heads=2, partial_rotary_factor=0.5),
    "falcon-multi-query": FalconConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                       multi_query=True, parallel_attn=True, bias=False),
    "falcon-new-decoder": FalconConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                       new_decoder_architecture=True, num_kv_heads=2, bias=False),
    "falcon-sequential-bias": FalconConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                           multi_query=False, parallel_attn=False, bias=True, tie_word_embeddings=False),
    "bart": BartConfig(vocab_size=VOCAB, d_model=64, decoder_layers=2, decoder_attention_heads=4, decoder_ffn_dim=128,
                       encoder_layers=1, encoder_attention_heads=4, encoder_ffn_dim=128, max_position_embeddings=128,
                       scale_embedding=True),
}


def batches():
    rng = random.Random(7)
    text = [[rng.randrange(VOCAB) for _ in range(n)] for n in (64, 97)]
    context, reference = [rng.randrange(VOCAB) for _ in range(20)], [rng.randrange(VOCAB) for _ in range(30)]
    return [
        {"token_ids": text[0], "context_len": 0},
        {"token_ids": text[1], "context_len": 0},
        {"token_ids": context + reference, "context_len": 20},
    ]


def loss(model, batch):
    ids = torch.tensor([batch["token_ids"]])
    with torch.inference_mode():
        logits = model(ids, use_cache=False).logits[0].float()
    shifted, targets = logits[:-1], ids[0, 1:]
    if batch["context_len"]:
        n = len(batch["token_ids"]) - batch["context_len"]
        shifted, targets = shifted[-n:], targets[-n:]
    return torch.nn.functional.cross_entropy(shifted, targets).item()


def make_model(config):
    """A random model of `config` with eager attention, 2-D weights scaled up so that losses are
    far from ln(vocab). Draws from torch's global RNG: call in VARIANTS order after seed 0."""
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(5.0)
    return model.eval()


def main():
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    data = batches()
    reference = {"torch": torch.__version__, "transformers": transformers.__version__, "batches": data, "models": {}}
    for name, config in VARIANTS.items():
        model = make_model(config)
        model.save_pretrained(OUT / name, safe_serialization=True)
        reference["models"][name] = {
            "architecture": type(model).__name__,
            "n_params": sum(p.numel() for p in model.parameters()),
            "losses": [loss(model, b) for b in data],
        }
        print(name, reference["models"][name])
    (OUT / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")


if __name__ == "__main__":
    main()
