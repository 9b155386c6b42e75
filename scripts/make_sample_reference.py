#!/usr/bin/env python3
"""Writes testdata/expected/sample_batches_sn9.json: the pages and token windows SN9's loaders
pick for competition 4 from the fixture datasets (scripts/datasets_fixture.py), computed the way
macrocosm-os/pretraining's `pretrain/dataset.py` and validator do — CPython's `random`, the Python
`tokenizers` library (what transformers' fast tokenizers run), `Random(seed).shuffle`, first 50.
This is an independent re-statement of upstream.md §4.2 in Python, used to check valkit's Rust.

Run once by a developer (`pip install tokenizers==0.23.3`); the output is committed."""

import hashlib
import json
import random
from pathlib import Path

from tokenizers import Tokenizer

import datasets_fixture as fx

ROOT = Path(__file__).resolve().parent.parent
BLOCK_HASH = "0x4dc02bb26fc8cb4c0f9c97d975cd041ef88174a832f0bcdf1e63c6919691cdf5"
SEQ_LEN = 4096
MAX_BATCHES = 50
# (task, loader kind, dataset, config, pages, max_pages) as in the sn9 profile for competition 4.
TASKS = [
    ("FINEWEB", "config", "HuggingFaceFW/fineweb", None, 15, None),
    ("FINEWEB_EDU2", "config", "HuggingFaceFW/fineweb-edu-score-2", None, 15, None),
    ("STACKV2_DEDUP", "unsupported", "bigcode/the-stack-v2-dedup", None, 30, None),
    ("PES2OX", "offset", "laion/Pes2oX-fulltext", "pes2ov2", 2, 8_242_000),
    ("FINEMATH_3P", "offset", "HuggingFaceTB/finemath", "finemath-3plus", 6, 21_400_000),
    ("INFIWEBMATH_3P", "offset", "HuggingFaceTB/finemath", "infiwebmath-3plus", 6, 13_900_000),
]


def load_tokenizer():
    tok = Tokenizer.from_file(str(ROOT / "testdata" / "tokenizer" / "tokenizer.json"))
    config = json.loads((ROOT / "testdata" / "tokenizer" / "tokenizer_config.json").read_text())
    tok.enable_truncation(config["model_max_length"])
    return tok, tok.token_to_id(config["eos_token"])


def tokenize(tok, eos, text):
    return tok.encode(text).ids + [eos]


def config_loader(seed, dataset, num_pages, tok, eos):
    random.seed(seed)
    buffer, names = [], []
    fetch_attempt = 1
    while fetch_attempt < 15:
        configs = [(c, n, s) for c, s, n in fx.size(dataset) if c != "default"]
        pages = []
        initial_offset = random.randint(0, 49)
        while len(pages) < num_pages:
            cfg, num_rows, split = random.choice(configs)
            page_count = (num_rows - initial_offset + 1) // 50
            page = (cfg, initial_offset + random.randint(0, page_count - 1) * 50, split)
            if page in pages:
                continue
            pages.append(page)
            names.append(f"{dataset}:{page[0]}:{page[2]}:{page[1]}")
            for row in fx.rows(dataset, page[0], page[2], page[1], 50):
                buffer += tokenize(tok, eos, row["text"])
        fetch_attempt += 1
        if len(buffer) >= SEQ_LEN:
            break
    return buffer, names


def offset_loader(seed, dataset, config, num_pages, max_pages, tok, eos):
    random.seed(seed)
    fetch_attempt = 1
    while fetch_attempt < 15:
        pages = [random.randint(1, max_pages) for _ in range(num_pages)]
        buffer, names = [], []
        for page in pages:
            names.append(f"{dataset}:{config}:train:{page}")
            for row in fx.rows(dataset, config, "train", page, 50):
                buffer += tokenize(tok, eos, row["text"])
        fetch_attempt += 1
        if len(buffer) >= SEQ_LEN:
            break
    return buffer, names


def sn37_first_page(seed, dataset, rows_per_page):
    """finetuning's HuggingFaceLoader: a lone /size entry is used even if named default."""
    random.seed(seed)
    entries = fx.size(dataset)
    configs = [(c, n, s) for c, s, n in entries] if len(entries) == 1 else [(c, n, s) for c, s, n in entries if c != "default"]
    initial_offset = random.randint(0, rows_per_page - 1)
    cfg, num_rows, split = random.choice(configs)
    page_count = (num_rows - initial_offset + 1) // rows_per_page
    offset = initial_offset + random.randint(0, page_count - 1) * rows_per_page
    return initial_offset, f"{dataset}:{cfg}:{split}:{offset}"


def main():
    seed = int(hashlib.sha256(BLOCK_HASH.encode()).hexdigest(), 16)
    tok, eos = load_tokenizer()
    out = {"block_hash": BLOCK_HASH, "seed": str(seed), "sequence_length": SEQ_LEN, "tasks": {}}
    for name, kind, dataset, config, num_pages, max_pages in TASKS:
        if kind == "unsupported":
            # Not sampled (its content is in S3), but its row offsets can still be planned.
            random.seed(seed)
            out["stack_v2_plan"] = [random.randint(1, 5_451_114_734) for _ in range(num_pages)]
            out["tasks"][name] = None
            continue
        if kind == "config":
            buffer, pages = config_loader(seed, dataset, num_pages, tok, eos)
        else:
            buffer, pages = offset_loader(seed, dataset, config, num_pages, max_pages, tok, eos)
        windows = [buffer[i : i + SEQ_LEN] for i in range(0, len(buffer) - SEQ_LEN + 1, SEQ_LEN)]
        random.Random(seed).shuffle(windows)
        windows = windows[:MAX_BATCHES]
        out["tasks"][name] = {
            "pages": pages,
            "buffer_tokens": len(buffer),
            "windows_sha256": [hashlib.sha256(json.dumps(w).encode()).hexdigest() for w in windows],
            "first_window_head": windows[0][:16],
        }
    out["sn37_plans"] = {}
    for name, dataset, per_page in [("SYNTHETIC_1_SFT", "PrimeIntellect/SYNTHETIC-1-SFT-Data", 150), ("CODEFORCES_COTS", "open-r1/codeforces-cots", 120)]:
        initial, page = sn37_first_page(seed, dataset, per_page)
        out["sn37_plans"][name] = {"initial_offset": initial, "pages": [page]}
    path = ROOT / "testdata" / "expected" / "sample_batches_sn9.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}: " + ", ".join(f"{k}={len(v['windows_sha256']) if v else 'skipped'}" for k, v in out["tasks"].items()))


if __name__ == "__main__":
    main()
