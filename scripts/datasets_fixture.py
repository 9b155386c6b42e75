"""The synthetic rows the test datasets-server serves (tests/fixtures/datasets.rs implements the
same function in Rust). Any offset of any configured split has a deterministic row, so the
reference row counts of real datasets (millions of rows) can be served from nothing."""

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTDATA = HERE.parent / "testdata" / "datasets"
WORDS = (TESTDATA / "words.txt").read_text().split()
MASK = (1 << 64) - 1


def row_text(dataset: str, config: str, split: str, idx: int) -> str:
    h = hashlib.sha256(f"{dataset}|{config}|{split}|{idx}".encode()).digest()
    n = 8 + h[0] % 120
    state = int.from_bytes(h[8:16], "little")
    words = []
    for _ in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        words.append(WORDS[(state >> 33) % len(WORDS)])
    words[0] = words[0][0].upper() + words[0][1:]
    return " ".join(words) + "."


def server_spec() -> dict:
    return json.loads((TESTDATA / "server.json").read_text())


def size(dataset: str) -> list:
    """`size.splits` entries as (config, split, num_rows), in response order."""
    return [tuple(e) for e in server_spec()[dataset]]


def rows(dataset: str, config: str, split: str, offset: int, length: int) -> list:
    num_rows = dict(((c, s), n) for c, s, n in size(dataset))[(config, split)]
    return [{"text": row_text(dataset, config, split, i)} for i in range(offset, min(offset + length, num_rows))]
