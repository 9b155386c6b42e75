#!/usr/bin/env python3
"""The reference side of scripts/bench/tokenize.sh: upstream's loop in Python — CPython random
picks the same pages valkit picks, Python `tokenizers` encodes each document with truncation
(what transformers' fast tokenizer runs), EOS appended, packed into 4096-token windows,
shuffled with Random(seed). Prints documents, tokens, windows and seconds (rows read from the
same JSONL files; JSON parsing is inside the timed region on both sides)."""

import json
import random
import sys
import time
from pathlib import Path

from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent.parent
SEED, SEQ, PER_PAGE = 42, 4096, 50


def main() -> None:
    work = Path(sys.argv[1])
    start = time.perf_counter()
    tok = Tokenizer.from_file(str(ROOT / "testdata/tokenizer/tokenizer.json"))
    config = json.loads((ROOT / "testdata/tokenizer/tokenizer_config.json").read_text())
    tok.enable_truncation(config["model_max_length"])
    eos = tok.token_to_id(config["eos_token"])
    files = sorted((work / "corpus").glob("*.jsonl"))
    rows = {f.stem: [json.loads(l) for l in f.read_text().splitlines() if l.strip()] for f in files}
    configs = [(name, len(r)) for name, r in rows.items()]
    num_pages = sum(n for _, n in configs) // PER_PAGE
    random.seed(SEED)
    buffer, pages, docs = [], [], 0
    initial = random.randint(0, PER_PAGE - 1)
    dups = 0
    while len(pages) < num_pages:
        name, n = random.choice(configs)
        page = (name, initial + random.randint(0, (n - initial + 1) // PER_PAGE - 1) * PER_PAGE)
        if page in pages:
            dups += 1
            if dups >= 100:
                break
            continue
        pages.append(page)
        for row in rows[name][page[1] : page[1] + PER_PAGE]:
            buffer += tok.encode(row["text"]).ids + [eos]
            docs += 1
    windows = [buffer[i : i + SEQ] for i in range(0, len(buffer) - SEQ + 1, SEQ)]
    random.Random(SEED).shuffle(windows)
    elapsed = time.perf_counter() - start
    print(json.dumps({"docs": docs, "tokens": len(buffer), "windows": len(windows), "seconds": elapsed}))


if __name__ == "__main__":
    main()
