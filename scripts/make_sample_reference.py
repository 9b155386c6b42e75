#!/usr/bin/env python3
"""Writes testdata/expected/sample_batches_sn9.json: the pages and token windows SN9's loaders
pick for competition 4 from the fixture datasets (scripts/datasets_fixture.py), computed the way
macrocosm-os/pretraining's `pretrain/dataset.py` and validator do — CPython's `random`, the Python
`tokenizers` library (what transformers' fast tokenizers run), `Random(seed).shuffle`, first 50.
This is an independent re-statement of upstream.md §4.2 in Python, used to check valkit's Rust.

STACKV2_DEDUP is computed for real through S3: the script starts a local S3 server
(scripts/s3-server.sh: s3rver, installed from npm on first use, so it needs node >= 20 and npm),
uploads the gzipped blob (`datasets_fixture.stack_v2_content`) of every row of the pages the loader
draws to `content/{blob_id}` of the bucket `softwareheritage` with boto3, then reads each row's
content back as upstream's SubsetStackV2DedupLoader does: boto3 `get_object`, gunzip,
`.decode(src_encoding)`.

Run once by a developer; the output is committed:

    python3 -m venv /tmp/venv-ref
    /tmp/venv-ref/bin/pip install tokenizers==0.23.3 boto3 jinja2
    /tmp/venv-ref/bin/python scripts/make_sample_reference.py"""

import contextlib
import gzip
import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

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
    ("STACKV2_DEDUP", "stack-v2", "bigcode/the-stack-v2-dedup", "default", 30, 5_451_114_734),
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


def offset_loader(seed, dataset, config, num_pages, max_pages, tok, eos, content=lambda row: row["text"], on_pages=None):
    """Upstream's SubsetLoader with `_sample_pages`. `content` is `_get_content_from_row`;
    `on_pages`, when given, sees each attempt's pages before they are read (the S3 side uses it to
    store their blobs) and draws nothing from `random`."""
    random.seed(seed)
    fetch_attempt = 1
    while fetch_attempt < 15:
        pages = [random.randint(1, max_pages) for _ in range(num_pages)]
        if on_pages is not None:
            on_pages(pages)
        buffer, names = [], []
        for page in pages:
            names.append(f"{dataset}:{config}:train:{page}")
            for row in fx.rows(dataset, config, "train", page, 50):
                buffer += tokenize(tok, eos, content(row))
        fetch_attempt += 1
        if len(buffer) >= SEQ_LEN:
            break
    return buffer, names


S3_BUCKET = "softwareheritage"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server():
    """scripts/s3-server.sh on a free port, with the bucket; yields a boto3 client for it."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="valkit-s3-ref-") as data:
        proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "s3-server.sh"), str(port), data, S3_BUCKET], start_new_session=True)
        try:
            client = boto3.client(
                "s3",
                endpoint_url=f"http://127.0.0.1:{port}",
                aws_access_key_id="S3RVER",
                aws_secret_access_key="S3RVER",
                region_name="us-east-1",
                config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required", response_checksum_validation="when_required"),
            )
            deadline = time.monotonic() + 300  # the first use installs s3rver from npm
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"scripts/s3-server.sh exited with {proc.returncode}")
                try:
                    client.head_bucket(Bucket=S3_BUCKET)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            yield client
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def stack_v2_loader(seed, dataset, config, num_pages, max_pages, tok, eos):
    """SubsetStackV2DedupLoader against a local S3 server holding the fixture's blobs."""
    with s3_server() as s3:

        def store_blobs(pages):
            for page in pages:
                for idx in range(page, page + 50):
                    row = fx.stack_v2_row(config, "train", idx)
                    body = gzip.compress(fx.stack_v2_content(config, "train", idx), mtime=0)
                    s3.put_object(Bucket=S3_BUCKET, Key=f"content/{row['blob_id']}", Body=body)

        def download_row_content(row):
            obj = s3.get_object(Bucket=S3_BUCKET, Key=f"content/{row['blob_id']}")
            return gzip.decompress(obj["Body"].read()).decode(row["src_encoding"])

        return offset_loader(seed, dataset, config, num_pages, max_pages, tok, eos, content=download_row_content, on_pages=store_blobs)


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


REASONING_PROMPT = "You are a reflective AI capable of using extended chains of thought to consider the problem thoroughly and deliberate through systematic reasoning to arrive at a correct solution before answering. Enclose your internal monologue in <think> ... </think> tags, then provide your final answer in the format that the user requests."


class FtLoader:
    """finetuning's HuggingFaceLoader page loop, with the server's 100-row pages."""

    def __init__(self, seed, dataset, rows_per_page):
        random.seed(seed)
        self.dataset, self.per_page = dataset, rows_per_page
        entries = fx.size(dataset)
        keep = entries if len(entries) == 1 else [e for e in entries if e[0] != "default"]
        self.configs = [(c, n, s) for c, s, n in keep]
        self.buffer, self.all_pages = [], []

    def fetch(self, num_pages):
        pages = []
        initial = random.randint(0, self.per_page - 1)
        while len(pages) < num_pages:
            cfg, n, split = random.choice(self.configs)
            page = (cfg, initial + random.randint(0, (n - initial + 1) // self.per_page - 1) * self.per_page, split)
            if page in pages:
                continue
            pages.append(page)
            self.all_pages.append(f"{self.dataset}:{cfg}:{split}:{page[1]}")
            for i, row in enumerate(fx.rows(self.dataset, cfg, split, page[1], 100)):
                self.buffer.append((row, f"{self.dataset}:{cfg}:{split}:{page[1] + i}"))


def parse_math(messages):
    assistant = messages[1]["content"]
    matches = re.findall(r"\\boxed\{(.*?)\}", assistant)
    answer = matches[-1] if matches else ""
    trace = assistant
    if matches and answer:
        i = assistant.rfind(f"\\boxed{{{answer}}}")
        if i > -1:
            trace = assistant[:i].strip()
    return messages[0]["content"], trace, answer


def parse_code(messages):
    assistant = messages[1]["content"]
    matches = re.findall(r'{"output": "(.*?)"}', assistant)
    answer = matches[-1] if matches else ""
    trace = assistant
    if matches and answer:
        trace = assistant.replace(f'{{"output": "{answer}"}}', "", 1)
    return messages[0]["content"], trace, answer


def synthetic_samples(seed):
    loader = FtLoader(seed, fx.SYNTHETIC_1, 150)
    target, supported = 120, ["verifiable_math", "code_output_prediction"]
    samples, parsed = [], set()

    def refilter():
        loader.buffer = [b for b in loader.buffer if b[0].get("task_type", "unknown") in supported]

    def parse_more():
        for i, (row, source) in enumerate(loader.buffer):
            if i in parsed:
                continue
            parsed.add(i)
            tt = row["task_type"]
            q, t, a = (parse_math if tt == "verifiable_math" else parse_code)(row["messages"])
            samples.append((q, t, a, tt, source))
            if len(samples) >= target:
                break

    loader.fetch(1)
    refilter()
    parse_more()
    extra, attempts = 1, 0
    while len(samples) < target and attempts < 10:
        attempts += 1
        loader.fetch(extra)
        refilter()
        parse_more()
        extra = min(extra * 2, 16)
    out = []
    for q, t, a, tt, source in samples:
        ref = t.strip() + (" \\boxed{" + a + "}" if tt == "verifiable_math" else ' {"output": "' + a + '"}')
        out.append((q, ref, source))
    return out, loader.all_pages


def codeforces_samples(seed):
    loader = FtLoader(seed, fx.CODEFORCES, 120)
    loader.fetch(1)
    out = []
    for row, source in loader.buffer:
        messages = row.get("messages", [])
        if len(messages) != 2:
            continue
        q, t = messages[0]["content"], messages[1]["content"]
        if len(q) // 4 + len(t) // 4 + 10 > 16384:
            continue
        out.append((q, t.strip(), source))
    return out, loader.all_pages


def render_chat(template, question, config):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    messages = [{"role": "system", "content": REASONING_PROMPT}, {"role": "user", "content": question}]
    specials = {k: config[k] for k in ("bos_token", "eos_token", "unk_token") if k in config}
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, **specials)


def sn37_reference(seed):
    tok = Tokenizer.from_file(str(ROOT / "testdata" / "tokenizer" / "tokenizer.json"))
    config = json.loads((ROOT / "testdata" / "tokenizer" / "tokenizer_config.json").read_text())
    out = {}
    for name, make in (("SYNTHETIC_1_SFT", synthetic_samples), ("CODEFORCES_COTS", codeforces_samples)):
        samples, pages = make(seed)
        rows = []
        for q, ref, source in samples:
            context = tok.encode(render_chat(config["chat_template"], q, config)).ids
            reference = tok.encode(ref).ids
            tokens = context + reference
            rows.append({"source": source, "context_len": len(context), "sha256": hashlib.sha256(json.dumps(tokens).encode()).hexdigest()})
        out[name] = {"pages": pages, "samples": rows}
    return out


def main():
    seed = int(hashlib.sha256(BLOCK_HASH.encode()).hexdigest(), 16)
    tok, eos = load_tokenizer()
    out = {"block_hash": BLOCK_HASH, "seed": str(seed), "sequence_length": SEQ_LEN, "tasks": {}}
    for name, kind, dataset, config, num_pages, max_pages in TASKS:
        if kind == "stack-v2":
            # Its row offsets alone, as well as the task sampled through S3 below.
            random.seed(seed)
            out["stack_v2_plan"] = [random.randint(1, max_pages) for _ in range(num_pages)]
            buffer, pages = stack_v2_loader(seed, dataset, config, num_pages, max_pages, tok, eos)
        elif kind == "config":
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
    out["sn37_batches"] = sn37_reference(seed)
    path = ROOT / "testdata" / "expected" / "sample_batches_sn9.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}: " + ", ".join(f"{k}={len(v['windows_sha256']) if v else 'skipped'}" for k, v in out["tasks"].items()))


if __name__ == "__main__":
    main()
