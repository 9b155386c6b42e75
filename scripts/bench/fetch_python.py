#!/usr/bin/env python3
"""The reference side of the fetch benchmark: what upstream's download does for one model, with
huggingface_hub against the same local hub — the repository's file list with sizes
(`model_info(files_metadata=True)`), the hashed files downloaded pinned to the commit, then the
directory hash (taoverse's `get_hash_of_directory`, from scripts/snapshot_hash.py).

    fetch_python.py ENDPOINT REPO COMMIT CACHE_DIR FILE...

Run by `bench_fetch_throughput` when VALKIT_HF_PYTHON names an interpreter with
huggingface_hub (`pip install huggingface_hub`).
"""

import os
import sys

endpoint, repo, commit, cache, *files = sys.argv[1:]
os.environ["HF_ENDPOINT"] = endpoint
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from huggingface_hub import HfApi, hf_hub_download  # noqa: E402
from snapshot_hash import get_hash_of_directory  # noqa: E402

info = HfApi(endpoint=endpoint).model_info(repo, revision=commit, files_metadata=True)
paths = [hf_hub_download(repo, f, revision=commit, cache_dir=cache) for f in files]
print(get_hash_of_directory(os.path.dirname(paths[0])))
