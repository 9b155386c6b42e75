#!/usr/bin/env python3
"""The model hash and secure hash of a downloaded snapshot, restated from taoverse 2.0.2
(`taoverse/model/storage/disk/utils.py` get_hash_of_directory, `taoverse/model/utils.py`
get_hash_of_two_strings) with the standard library only, as an independent check of valkit's.

    scripts/snapshot_hash.py SNAPSHOT_DIR [HOTKEY]

Prints the directory hash, and the secure hash for HOTKEY when given, one per line. Symlinks
(the Hugging Face cache's) are read through, as upstream reads the files after realising them.
"""

import base64
import hashlib
import os
import sys


def get_hash_of_file(path: str) -> str:
    blocksize = 64 * 1024
    file_hash = hashlib.sha256()
    with open(path, "rb") as fp:
        while True:
            data = fp.read(blocksize)
            if not data:
                break
            file_hash.update(data)
    return base64.b64encode(file_hash.digest()).decode("utf-8")


def get_hash_of_directory(path: str) -> str:
    dir_hash = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for file in sorted(files):
            dir_hash.update(get_hash_of_file(os.path.join(root, file)).encode())
    return base64.b64encode(dir_hash.digest()).decode("utf-8")


def get_hash_of_two_strings(a: str, b: str) -> str:
    hasher = hashlib.sha256()
    hasher.update(a.encode())
    hasher.update(b.encode())
    return base64.b64encode(hasher.digest()).decode("utf-8")


if __name__ == "__main__":
    model_hash = get_hash_of_directory(sys.argv[1])
    print(model_hash)
    if len(sys.argv) > 2:
        print(get_hash_of_two_strings(model_hash, sys.argv[2]))
