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
    return [row(dataset, config, split, i) for i in range(offset, min(offset + length, num_rows))]


SYNTHETIC_1 = "PrimeIntellect/SYNTHETIC-1-SFT-Data"
CODEFORCES = "open-r1/codeforces-cots"
TASK_TYPES = ["verifiable_math", "code_output_prediction", "llm_judgeable_groundtruth_similarity", "verifiable_code"]


def synthetic_row(config: str, split: str, idx: int) -> dict:
    """A SYNTHETIC-1-SFT-like row: math answers in \\boxed{}, code outputs as {"output": "..."},
    with the corner cases upstream's parsing meets (several answers, nested braces, none)."""
    h = hashlib.sha256(f"{SYNTHETIC_1}|{config}|{split}|{idx}".encode()).digest()
    kind = TASK_TYPES[h[1] % 4]
    question = row_text(SYNTHETIC_1, config, split, idx)
    words = row_text(SYNTHETIC_1, config, split + "/a", idx)
    variant = h[2] % 3
    if kind == "verifiable_math":
        answer = [
            f"<think>\n{words}\n</think>\nSo the result is \\boxed{{{h[3]}}}.",
            f"{words} First \\boxed{{1}} then \\boxed{{\\frac{{{h[3]}}}{{2}}}} done",
            f"{words} no boxed answer here",
        ][variant]
    elif kind == "code_output_prediction":
        answer = [
            f'<think>{words}</think> {{"output": "v{h[3]}"}}',
            f'{{"output": "a"}} {words} {{"output": "a"}}',
            words,
        ][variant]
    else:
        answer = words
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"response_id": f"r{idx}", "problem_id": f"p{idx}", "task_type": kind, "score": 1, "messages": messages}


def codeforces_row(config: str, split: str, idx: int) -> dict:
    """A codeforces-cots-like row: usually 2 messages, sometimes 3 (skipped upstream), and now and
    then a trace long enough to exceed the 16384-token estimate (filtered upstream)."""
    h = hashlib.sha256(f"{CODEFORCES}|{config}|{split}|{idx}".encode()).digest()
    question = row_text(CODEFORCES, config, split, idx)
    trace = "  " + row_text(CODEFORCES, config, split + "/t", idx) + "\n"
    if h[2] % 25 == 0:
        trace = trace * 400
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": trace}]
    if h[1] % 10 == 0:
        messages.append({"role": "user", "content": "thanks"})
    return {"id": f"cf{idx}", "contest_type": "ICPC", "messages": messages}


STACK_V2 = "bigcode/the-stack-v2-dedup"
STACK_V2_ENCODINGS = ["UTF-8", "UTF-8", "UTF-8", "ISO-8859-1", "windows-1252", "UTF-16", "UTF-16LE", "windows-1251"]
STACK_V2_SUFFIX = {
    "UTF-8": " # naïve café — ✓ 你好",
    "ISO-8859-1": " # café über Straße ±",
    "windows-1252": " # café — “quoted” €",
    "UTF-16": " # naïve — ✓",
    "UTF-16LE": " # naïve — ✓ 你好",
    "windows-1251": " # привет мир",
}


def stack_v2_row(config, split, idx):
    """A the-stack-v2-dedup-like row: no text, only the blob's id and the encoding of its bytes
    (the content is the gzip object `content/{blob_id}` of the `softwareheritage` bucket)."""
    h = hashlib.sha256(f"{STACK_V2}|{config}|{split}|{idx}".encode()).digest()
    encoding = STACK_V2_ENCODINGS[h[1] % len(STACK_V2_ENCODINGS)]
    return {"blob_id": h[8:28].hex(), "src_encoding": encoding, "path": f"src/file_{idx}.py", "language": "Python"}


def stack_v2_content(config, split, idx) -> bytes:
    """The file's bytes (before gzip), in its src_encoding."""
    row = stack_v2_row(config, split, idx)
    text = row_text(STACK_V2, config, split, idx) + STACK_V2_SUFFIX[row["src_encoding"]]
    return text.encode(row["src_encoding"])


def row(dataset: str, config: str, split: str, idx: int) -> dict:
    if dataset == STACK_V2:
        return stack_v2_row(config, split, idx)
    if dataset == SYNTHETIC_1:
        return synthetic_row(config, split, idx)
    if dataset == CODEFORCES:
        return codeforces_row(config, split, idx)
    return {"text": row_text(dataset, config, split, idx)}
