#!/usr/bin/env python3
"""Writes testdata/expected/python_random.json: sequences from CPython's own `random` module for
seeds of every size valkit meets (0, small, 2**32-1, 2**32, 2**64+1, 256-bit block-hash seeds),
covering randint over ranges below and above 2**32, getrandbits for 1..64 bits, choice, shuffle,
random() and interleavings of them, so that src/sampling's port is checked beyond vectors.json.

Run once by a developer with CPython 3.11 (no packages needed); the output is committed."""

import hashlib
import json
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "testdata" / "expected" / "python_random.json"
SEEDS = [0, 1, 7, 42, 2**32 - 1, 2**32, 2**64 + 1, 2**128 + 12345]
SEEDS += [int(hashlib.sha256(f"0x{i:064x}".encode()).hexdigest(), 16) for i in range(4)]


def sequences(seed: int) -> dict:
    rng = random.Random(seed)
    out = {"seed": str(seed)}
    out["randint"] = [[a, b, rng.randint(a, b)] for a, b in [(0, 49), (1, 968000015), (0, 1), (5, 5), (0, 2**32), (1, 5451114734), (0, 2**40 - 1), (0, 2**63)] for _ in range(3)]
    out["getrandbits"] = [[k, rng.getrandbits(k)] for k in [1, 2, 7, 31, 32, 33, 48, 63, 64]]
    items = list(range(23))
    out["choice"] = [rng.choice(items) for _ in range(10)]
    perm = list(range(37))
    rng.shuffle(perm)
    out["shuffle_37"] = perm
    out["random"] = [repr(rng.random()) for _ in range(5)]
    out["after"] = rng.getrandbits(32)
    return out


def main() -> None:
    data = {"python": sys.version.split()[0], "cases": [sequences(s) for s in SEEDS]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT} ({len(SEEDS)} seeds)")


if __name__ == "__main__":
    main()
