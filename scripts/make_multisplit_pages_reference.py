#!/usr/bin/env python3
"""Writes testdata/expected/multisplit_pages.json: the pages upstream's FineWeb-style loaders pick
when `/size` lists a config under several splits (e.g. `train` and `test`). Upstream builds
`{e.config: (e.num_rows, e.split) for e in splits if e.config != "default"}`, a Python dict: the
config keeps the position of its first listing and the num_rows/split of its last
(upstream.md §4.2). Restated here with CPython's own `random`, standard library only:
    python3 scripts/make_multisplit_pages_reference.py
"""

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "testdata" / "expected" / "multisplit_pages.json"
PER_PAGE, NUM_PAGES = 50, 12
SEED = 21247366231115799760330553486728966526783425820073539227800434690590731330490

SPLITS = [
    {"config": "default", "split": "train", "num_rows": 9_000_000},
    {"config": "CC-MAIN-2024-10", "split": "train", "num_rows": 4_000},
    {"config": "CC-MAIN-2023-50", "split": "train", "num_rows": 2_600},
    {"config": "CC-MAIN-2024-10", "split": "test", "num_rows": 310},
    {"config": "CC-MAIN-2023-06", "split": "train", "num_rows": 1_200},
]


def main() -> None:
    configs_data = {e["config"]: (e["num_rows"], e["split"]) for e in SPLITS if e["config"] != "default"}
    random.seed(SEED)
    initial_offset = random.randint(0, PER_PAGE - 1)
    pages, dups = [], 0
    while len(pages) < NUM_PAGES:
        cfg = random.choice(list(configs_data))
        rows = configs_data[cfg][0] - initial_offset
        start = initial_offset + random.randint(0, (rows + 1) // PER_PAGE - 1) * PER_PAGE
        page = (cfg, start, configs_data[cfg][1])
        if page in pages:
            dups += 1
            if dups >= 100:
                break
            continue
        pages.append(page)
    OUT.write_text(json.dumps({"seed": str(SEED), "rows_per_page": PER_PAGE, "splits": SPLITS,
                               "initial_offset": initial_offset, "pages": pages}, indent=1) + "\n")
    print(f"wrote {OUT}: {pages}")


if __name__ == "__main__":
    main()
