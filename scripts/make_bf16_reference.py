#!/usr/bin/env python3
"""Writes testdata/models/reference_bf16.json: bf16 / f16 reference losses of the tiny models in
testdata/models/ (made by scripts/make_tiny_models.py), computed the way Bittensor SN9 / SN37
validators compute them on CUDA (transformers, `from_pretrained(dtype=torch.bfloat16)`,
flash-attention-2), emulated on CPU in torch so that valkit's Rust engine can be checked against it.

What is emulated (see ../shared/spec/upstream.md §5.2, §5.3, §10 item 9):
* Loading: `from_pretrained(dtype=bf16|f16)`; RoPE's `inv_freq` buffer stays float32 (asserted).
* Attention: flash-attention-2's forward, written out block by block and registered with transformers'
  `AttentionInterface` as "fa2_emulated" (Falcon does not use that interface: its layers are switched
  to `FalconFlashAttention2`, whose `_flash_attention_forward` is replaced by the same emulation).
  Query blocks of 128 rows, key blocks of 128 columns (64 when head_dim > 64), key blocks walked from
  the diagonal back; scores q·kᵀ, scaling, Gemma2's soft-capping, the running max and the row sums in
  float32; the probabilities rounded to the model dtype before P·V, accumulated in float32; the
  output divided by the row sum and rounded to the model dtype. Causal; a sliding window w lets a
  query at position q see keys q-w .. q (w+1 keys, as flash-attn's `window_size=(w, w)` in
  transformers 4.44/4.48 does; eager attends w keys).
* Losses: `f32` (f32 model, eager attention, f32 cross entropy), `*_upcast` (transformers 4.44.1 = SN9
  for Llama/Mistral/Qwen2/Gemma/Gemma2/Phi: logits `.float()` then f32 cross entropy), `*_never`
  (transformers 4.48.3 = SN37 and 4.44.1 Falcon/GPT-NeoX/Bart: log-softmax rounded to the model dtype,
  the NLL summed in f32, the mean rounded once to the model dtype, as CUDA does), and
  `bf16_upcast_eager` (transformers' own eager attention in bf16, upcast rule) for comparison, and for
  models with a sliding window `bf16_upcast_window_w`: bf16_upcast with a w-key window (eager's rule,
  and what transformers 5.x passes to flash-attn: window_size=(w-1, w-1)) instead of w+1 keys.

Batches: the three of testdata/models/reference.json, then two 512-token text batches and one 512-token
reference-loss batch with context_len 300, token ids drawn uniformly from the 600-token vocabulary with
random.Random(1234). Bart has max_position_embeddings 128, so its losses on the 512-token batches are
null (with the error recorded under "errors").

Run once by a developer, never in CI (about 2.5 minutes on 2 CPU cores):
    /work/venv-bench/bin/python scripts/make_bf16_reference.py
made with torch 2.15.0 and transformers 5.24.0 (CPU is enough), e.g.
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.15.0 transformers==5.24.0
The output is committed. `--check-only` runs just the self-checks (emulation in f32 with eager's window
rule against transformers' eager attention) and prints the attention kwargs transformers passes.
"""

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers import AttentionInterface, AutoModelForCausalLM
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.models.falcon import modeling_falcon

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "testdata" / "models"
OUT = MODELS / "reference_bf16.json"
VOCAB = 600
ATTN = "fa2_emulated"

ALGORITHM = (
    "Models are loaded with from_pretrained(dtype=bfloat16 or float16) (RoPE inv_freq stays float32). "
    "Attention emulates flash-attention-2's forward: key/value heads repeated to the query heads; query "
    "blocks of BM=128 rows; key blocks of BN=128 columns (64 when head_dim > 64), visited from the block "
    "holding the block's last query back to block max(0, qs - window) // BN (0 without a window); per key "
    "block, in float32: s = q.k^T, x = s*scaling (or softcap*tanh(s*scaling/softcap) for Gemma2), keys "
    "with k > q, or k < q - window under a sliding window (so w+1 keys are visible), set to -inf; "
    "m_new = max(m, rowmax x); m_use = m_new, or 0 where it is -inf; alpha = exp(m - m_use); "
    "p = exp(x - m_use); l = l*alpha + rowsum p; acc = acc*alpha + p.to(model dtype).float() @ v (f32); "
    "after the last block out = acc * (1/l), rounded to the model dtype. Losses per batch (ids of length "
    "T, context_len c): text loss (c=0) scores logits[0, :-1] against ids[1:], reference loss scores "
    "logits positions c-1..T-2 against ids[c:]; N scored tokens. f32: f32 model with eager attention, "
    "float32 cross-entropy mean. *_upcast (transformers 4.44.1, SN9 Llama/Mistral/Qwen2/Gemma/Gemma2/Phi): "
    "the model-dtype logits (after Gemma2's final soft-capping in the model dtype) .float(), float32 "
    "cross-entropy mean. *_never (transformers 4.48.3 = SN37, and 4.44.1 Falcon/GPT-NeoX/Bart): "
    "lsm = log_softmax(logits.float()).to(model dtype); nll = -lsm[target]; "
    "loss = (nll.float().sum() / N).to(model dtype) (float32 sum, one rounding, as on CUDA). "
    "bf16_upcast_eager: bf16 model with transformers' eager attention, upcast rule. "
    "bf16_upcast_window_w (only models with a sliding window): bf16_upcast with w visible keys (k >= q - w + 1, "
    "eager's and transformers 5.x flash's window) instead of w+1, to show what the window rule alone moves."
)

# The window rule of the emulation: "flash" = keys q-w..q (w+1 keys, flash-attn window_size=(w, w));
# "eager" = keys q-w+1..q (w keys; only for the self-check against transformers' eager attention).
WINDOW_RULE = "flash"
SEEN = {}  # (model name, layer) -> the attention kwargs transformers passed on its first call
CURRENT = {"model": None}


def fa2_emulate(q, k, v, scaling, softcap, window, dtype):
    """q [1, h, t, d], k/v [1, kv, t, d] in `dtype` -> output [1, h, t, d] in `dtype`."""
    b, h, t, d = q.shape
    assert b == 1, "batch 1 only"
    kv = k.shape[1]
    assert h % kv == 0
    if kv != h:
        k = k.repeat_interleave(h // kv, dim=1)
        v = v.repeat_interleave(h // kv, dim=1)
    q32, k32, v32 = q.float(), k.float(), v.float()
    bm = 128
    bn = 128 if d <= 64 else 64
    out = torch.zeros(1, h, t, d, dtype=torch.float32)
    pos = torch.arange(t)
    for qs in range(0, t, bm):
        qe = min(qs + bm, t)
        qpos = pos[qs:qe]
        m = torch.full((1, h, qe - qs), -math.inf)
        l = torch.zeros(1, h, qe - qs)
        acc = torch.zeros(1, h, qe - qs, d)
        n_max = -(-qe // bn)
        n_min = 0 if window is None else max(0, qs - window) // bn
        for j in reversed(range(n_min, n_max)):
            ks, ke = j * bn, min((j + 1) * bn, t)
            kpos = pos[ks:ke]
            s = q32[..., qs:qe, :] @ k32[..., ks:ke, :].transpose(-1, -2)
            x = s * scaling if softcap is None else softcap * torch.tanh(s * scaling / softcap)
            allowed = kpos[None, :] <= qpos[:, None]
            if window is not None:
                lo = qpos[:, None] - window if WINDOW_RULE == "flash" else qpos[:, None] - window + 1
                allowed = allowed & (kpos[None, :] >= lo)
            x = torch.where(allowed, x, torch.tensor(-math.inf))
            m_new = torch.maximum(m, x.amax(-1))
            m_use = torch.where(m_new == -math.inf, torch.zeros_like(m_new), m_new)
            alpha = torch.exp(m - m_use)
            p = torch.exp(x - m_use[..., None])
            l = l * alpha + p.sum(-1)
            acc = acc * alpha[..., None] + p.to(dtype).float() @ v32[..., ks:ke, :]
            m = m_new
        out[..., qs:qe, :] = acc * (1.0 / l)[..., None]
    return out.to(dtype)


def record(module, info):
    key = (CURRENT["model"], getattr(module, "layer_idx", None), type(module).__name__)
    if key not in SEEN:
        SEEN[key] = info


def fa2_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, sliding_window=None,
                  softcap=None, is_causal=None, **kwargs):
    """AttentionInterface entry: [1, h, t, d] inputs, returns ([1, t, h, d], None) like flash_attention_forward."""
    record(module, {"scaling": scaling, "sliding_window": sliding_window, "softcap": softcap, "is_causal": is_causal,
                    "module.is_causal": getattr(module, "is_causal", None), "dropout": dropout,
                    "other_kwargs": sorted(kwargs), "query": list(query.shape), "key": list(key.shape),
                    "dtype": str(query.dtype)})
    causal = is_causal if is_causal is not None else module.is_causal
    assert causal, "non-causal attention is not emulated"
    assert query.shape[2] == key.shape[2], "no cache / cross-attention expected"
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    out = fa2_emulate(query, key, value, scaling, softcap, sliding_window, query.dtype)
    return out.transpose(1, 2).contiguous(), None


def falcon_flash_forward(query, key, value, attention_mask, query_length, position_ids=None, dropout=0.0,
                         is_causal=True, softmax_scale=None, **kwargs):
    """Replaces modeling_falcon._flash_attention_forward: [1, t, h, d] in and out."""
    record(type("FalconFlashAttention2", (), {})(), {"scaling": softmax_scale, "is_causal": is_causal,
                                                    "other_kwargs": sorted(kwargs), "query": list(query.shape),
                                                    "key": list(key.shape), "dtype": str(query.dtype)})
    assert is_causal
    scaling = softmax_scale if softmax_scale is not None else query.shape[-1] ** -0.5
    out = fa2_emulate(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), scaling, None, None,
                      query.dtype)
    return out.transpose(1, 2).contiguous()


AttentionInterface.register(ATTN, fa2_attention)
AttentionMaskInterface.register(ATTN, sdpa_mask)  # the mask is built but ignored by fa2_attention
modeling_falcon._flash_attention_forward = falcon_flash_forward


def load(name, dtype, attention):
    path = MODELS / name
    config = json.loads((path / "config.json").read_text())
    falcon = config["model_type"] == "falcon"
    impl = "eager" if falcon and attention == ATTN else attention
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=impl).eval()
    if falcon and attention == ATTN:
        for layer in model.transformer.h:
            layer.self_attention.__class__ = modeling_falcon.FalconFlashAttention2
            layer.self_attention._flash_attn_uses_top_left_mask = False
    for p in model.parameters():
        assert p.dtype == dtype, (name, p.dtype)
    return model


def inv_freqs(model):
    return {n: b for n, b in model.named_buffers() if "inv_freq" in n}


def logits_of(model, ids):
    with torch.inference_mode():
        return model(torch.tensor([ids]), use_cache=False).logits[0]


def scored(logits, ids, c):
    t = len(ids)
    ids = torch.tensor(ids)
    if c == 0:
        return logits[:-1], ids[1:]
    return logits[c - 1:t - 1], ids[c:]


def loss_upcast(logits, ids, c):
    lg, tg = scored(logits, ids, c)
    return torch.nn.functional.cross_entropy(lg.float(), tg).item()


def loss_never(logits, ids, c, dtype):
    lg, tg = scored(logits, ids, c)
    lsm = torch.log_softmax(lg.float(), -1).to(dtype)
    nll = -lsm.gather(-1, tg[:, None])[:, 0]
    return (nll.float().sum() / tg.numel()).to(dtype).item()


def batches():
    data = json.loads((MODELS / "reference.json").read_text())["batches"]
    out = [{"token_ids": b["token_ids"], "context_len": b.get("context_len", 0)} for b in data]
    rng = random.Random(1234)
    for _ in range(2):
        out.append({"token_ids": [rng.randrange(VOCAB) for _ in range(512)], "context_len": 0})
    out.append({"token_ids": [rng.randrange(VOCAB) for _ in range(512)], "context_len": 300})
    return out


def representable(x, dtype):
    return float(torch.tensor(x, dtype=torch.float64).to(dtype).double()) == x


def rel(a, b):
    return abs(a - b) / abs(b)


def run_model(name, data, errors):
    """Returns {variant: [loss or None per batch]}."""
    res = {}
    plans = [("f32", torch.float32, "eager", "upcast"),
             ("bf16_upcast", torch.bfloat16, ATTN, "upcast"), ("bf16_never", torch.bfloat16, ATTN, "never"),
             ("f16_upcast", torch.float16, ATTN, "upcast"), ("f16_never", torch.float16, ATTN, "never"),
             ("bf16_upcast_eager", torch.bfloat16, "eager", "upcast"),
             ("bf16_upcast_window_w", torch.bfloat16, ATTN, "upcast")]
    cache = {}
    global WINDOW_RULE
    for variant, dtype, attention, rule in plans:
        if variant == "bf16_upcast_window_w":
            windowed = any(v.get("sliding_window") is not None for k, v in SEEN.items() if k[0] == name)
            if not windowed:
                continue
        window_rule = "eager" if variant == "bf16_upcast_window_w" else "flash"
        key = (dtype, attention, window_rule)
        if key not in cache:
            WINDOW_RULE = window_rule
            model = load(name, dtype, attention)
            if dtype != torch.float32:
                for n, b in inv_freqs(model).items():
                    assert b.dtype == torch.float32, f"{name}: {n} is {b.dtype} after from_pretrained(dtype={dtype})"
            CURRENT["model"] = name
            lgs = []
            for i, b in enumerate(data):
                try:
                    lg = logits_of(model, b["token_ids"])
                    assert lg.dtype == dtype, (name, lg.dtype)
                    lgs.append(lg)
                except Exception as e:  # noqa: BLE001 - recorded in the output
                    errors.setdefault(f"batch {i}", f"{type(e).__name__}: {e}".splitlines()[0])
                    lgs.append(None)
            cache[key] = lgs
            WINDOW_RULE = "flash"
        out = []
        for b, lg in zip(data, cache[key]):
            if lg is None:
                out.append(None)
            elif rule == "upcast":
                out.append(loss_upcast(lg, b["token_ids"], b["context_len"]))
            else:
                out.append(loss_never(lg, b["token_ids"], b["context_len"], dtype))
        res[variant] = out
    return res


def self_check(names, data):
    """The emulation in f32 with eager's window rule must match transformers' f32 eager attention."""
    global WINDOW_RULE
    WINDOW_RULE = "eager"
    worst = 0.0
    try:
        for name in names:
            e = load(name, torch.float32, "eager")
            f = load(name, torch.float32, ATTN)
            CURRENT["model"] = name
            for b in data:
                if name == "bart" and len(b["token_ids"]) > 128:
                    continue
                le, lf = logits_of(e, b["token_ids"]), logits_of(f, b["token_ids"])
                d = ((le - lf).abs().max() / le.abs().max()).item()
                worst = max(worst, d)
                if d > 1e-5:
                    print(f"SELF-CHECK FAILED {name}: f32 emulation vs eager logits rel max diff {d:.3g}")
                    sys.exit(1)
    finally:
        WINDOW_RULE = "flash"
    print(f"self-check: f32 emulation (eager window rule) vs f32 eager, worst logits rel diff {worst:.3g}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-only", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    t0 = time.time()
    ref = json.loads((MODELS / "reference.json").read_text())
    names = list(ref["models"])
    data = batches()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {len(names)} models, "
          f"batches {[(len(b['token_ids']), b['context_len']) for b in data]}")

    self_check(names, data)
    SEEN.clear()

    # inv_freq under from_pretrained(dtype=bf16) vs the f32 load, and vs model.to(bf16)
    for name in names:
        m32, m16 = load(name, torch.float32, "eager"), load(name, torch.bfloat16, "eager")
        f32, f16 = inv_freqs(m32), inv_freqs(m16)
        cast = inv_freqs(m32.to(torch.bfloat16))
        desc = ", ".join(f"{n}: {b.dtype} equal_to_f32_load={torch.equal(b, f32[n])} "
                         f"after .to(bf16): {cast[n].dtype}" for n, b in f16.items()) or "no inv_freq buffer"
        print(f"inv_freq {name}: {desc}")
    if args.check_only:
        for name in names:
            CURRENT["model"] = name
            logits_of(load(name, torch.bfloat16, ATTN), data[0]["token_ids"])
        for k, v in SEEN.items():
            print("attention kwargs", k, v)
        return

    out = {"torch": torch.__version__, "transformers": transformers.__version__, "algorithm": ALGORITHM,
           "batches": data, "models": {}}
    table = []
    for name in names:
        t1 = time.time()
        entry = {"architecture": ref["models"][name]["architecture"]}
        errors = {}
        try:
            entry.update(run_model(name, data, errors))
        except Exception as e:  # noqa: BLE001 - recorded in the output
            entry["error"] = f"{type(e).__name__}: {e}"
            print(f"{name}: FAILED {entry['error']}")
            out["models"][name] = entry
            continue
        if errors:
            entry["errors"] = errors
        # f32 must reproduce reference.json (made with transformers 5.23 on the same weights)
        for a, b in zip(entry["f32"], ref["models"][name]["losses"]):
            assert rel(a, b) < 1e-6, (name, a, b)
        for v, dt in (("bf16_never", torch.bfloat16), ("f16_never", torch.float16)):
            for x in entry[v]:
                assert x is None or representable(x, dt), (name, v, x)
        pairs = [(a, b, c) for a, b, c in zip(entry["f32"], entry["bf16_upcast"], entry["bf16_upcast_eager"])
                 if a is not None]
        d1 = [rel(b, a) for a, b, _ in pairs]
        d2 = [rel(c, b) for _, b, c in pairs]
        d3 = [rel(f, a) for a, f in zip(entry["f32"], entry["f16_upcast"]) if a is not None]
        d4 = [rel(w, a) for a, w in zip(entry["f32"], entry.get("bf16_upcast_window_w", [])) if a is not None]
        table.append((name, statistics.median(d1), max(d1), statistics.median(d2), max(d2),
                      statistics.median(d3), max(d3), statistics.median(d4) if d4 else None,
                      max(d4) if d4 else None))
        out["models"][name] = entry
        print(f"{name}: {time.time() - t1:.1f}s {json.dumps({k: v for k, v in entry.items() if k != 'architecture'})}")

    print("\nattention kwargs transformers passed (first call per model and layer):")
    for k, v in SEEN.items():
        print(" ", k, v)
    print("\nrelative differences per model (median / max over batches):")
    print(f"{'model':24} {'bf16_upcast vs f32':>22} {'bf16 eager vs fa2':>22} {'f16_upcast vs f32':>22}"
          f" {'window_w vs f32':>22}")
    for name, a, b, c, d, e, f, g, h in table:
        w = f"{g:10.2e} / {h:9.2e}" if g is not None else f"{'-':>22}"
        print(f"{name:24} {a:10.2e} / {b:9.2e} {c:10.2e} / {d:9.2e} {e:10.2e} / {f:9.2e} {w}")
    print("every bf16_never value is exactly representable in bf16, every f16_never in f16")
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
