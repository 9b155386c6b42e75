#!/usr/bin/env python3
"""Writes testdata/demo/: one realistic SN9 step of competition 4 (B14_MODEL) for `make demo`.

Run once by a developer (needs pyarrow: `pip install pyarrow`); its output is committed. The
tables are written with pyarrow on purpose — int64 columns, Snappy, lists named `element` — to
show that tables from other tools are valid valkit inputs when their metadata names the table.

The step, at block 5_200_000 (after BLOCK_TTS, so the schedule is TTS_V0 0.55, B3 0.15, B14 0.30):
  uid 1   the leader, committed 10_000 blocks ago (its epsilon has decayed to ~0.16%)
  uid 2,3 clones of the leader committed later (identical losses): dropped as non-competitive
  uid 4   a newcomer 0.1% better than the leader: inside the leader's epsilon, loses to it
  uid 5   a newcomer 1% better: beats the leader and takes the step
  uid 6   a model that failed to load: every row failed, score inf
  uid 7   kept from an earlier step, but its hotkey no longer has a commitment: score inf, block inf
  uid 8   committed to competition 2 (B3) since: inf for this competition
  uid 9-12 ordinary, worse models
  uid 13  the B3 competition's winner in the previous tracker (carried into the subnet weights)

It also writes testdata/demo/corpora/: two small local datasets (JSONL, one file per config) that
testdata/demo/competitions.toml — a custom subnet — samples its batches from.
"""

import argparse
import hashlib
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

NETUID = 9
COMPETITION = 4
CUR_BLOCK = 5_200_000
TASKS = ["FINEWEB", "FINEWEB_EDU2", "STACKV2_DEDUP", "PES2OX", "FINEMATH_3P", "INFIWEBMATH_3P"]
BATCHES = 4
N_UIDS = 16


def hotkey(uid: int) -> str:
    # Deterministic stand-ins for ss58 addresses (not real keys).
    return "5" + hashlib.sha256(f"demo-hotkey-{uid}".encode()).hexdigest()[:47]


def meta(table: str, schema_version: int = 1, **provenance) -> dict:
    out = {"valkit.table": table, "valkit.schema_version": str(schema_version), "valkit.version": "demo"}
    out.update({f"valkit.{k}": str(v) for k, v in provenance.items()})
    return {k.encode(): v.encode() for k, v in out.items()}


def write(path: Path, columns: dict, metadata: dict) -> None:
    table = pa.table(columns).replace_schema_metadata(metadata)
    pq.write_table(table, path)  # pyarrow defaults: Snappy, int64 where we gave Python ints


# (uid, commit_block, competition_id or None, base loss or None for failure, note)
MODELS = {
    1: (5_190_000, 4, 2.000, "leader"),
    2: (5_196_000, 4, 2.000, "clone of the leader"),
    3: (5_197_000, 4, 2.000, "clone of the leader"),
    4: (5_198_000, 4, 2.000 * (1 - 0.001), "0.1% better: within the leader's epsilon"),
    5: (5_199_000, 4, 2.000 * (1 - 0.01), "1% better: wins"),
    6: (5_150_000, 4, None, "fails to load"),
    7: (None, None, None, "no commitment any more"),
    8: (5_191_000, 2, None, "now committed to competition 2"),
    9: (5_100_000, 4, 2.150, "worse"),
    10: (5_120_000, 4, 2.300, "worse"),
    11: (5_180_000, 4, 2.080, "worse"),
    12: (5_010_000, 4, 2.050, "older, worse"),
}


# uid 0's weight row (u16, max-upscaled as the chain stores it): the step's winner most.
VALIDATOR_WEIGHTS = {1: 9000, 5: 65535, 9: 1200, 11: 2500, 13: 20000}


def metagraph(out: Path) -> None:
    rows = []
    for uid in range(N_UIDS):
        block, comp, _, _ = MODELS.get(uid, (None, None, None, ""))
        if uid == 13:
            block, comp = 5_100_500, 2
        commitment = None
        if comp is not None:
            commitment = f"demo-org:model-{uid}:{hashlib.sha1(str(uid).encode()).hexdigest()}:{'A' * 43}=:{comp}"
        rows.append(
            dict(
                netuid=NETUID,
                uid=uid,
                hotkey=hotkey(uid),
                coldkey=hotkey(1000 + uid),
                stake=50_000.0 if uid == 0 else 10.0 * uid,
                validator_permit=uid == 0,
                registration_block=4_000_000 + uid,
                commitment=commitment,
                commit_block=block,
                repo_namespace="demo-org" if comp is not None else None,
                repo_name=f"model-{uid}" if comp is not None else None,
                revision=hashlib.sha1(str(uid).encode()).hexdigest() if comp is not None else None,
                secure_hash=("A" * 43 + "=") if comp is not None else None,
                competition_id=comp,
                metadata_error="no commitment" if comp is None and uid != 0 else None,
                # What the chain's epoch reads (metagraph v2, `valkit consensus`): uid 0, the one
                # validator, weights the models by their losses' ranks; no bonds yet.
                weight_uids=list(VALIDATOR_WEIGHTS) if uid == 0 else [],
                weight_values=list(VALIDATOR_WEIGHTS.values()) if uid == 0 else [],
                last_update=CUR_BLOCK - 50 if uid == 0 else 4_000_000 + uid,
                alpha_stake=int((50_000.0 if uid == 0 else 10.0 * uid) * 1e9),
                root_stake=0,
                bond_uids=[],
                bond_values=[],
                consensus=0,
                validator_trust=0,
                incentive=0,
                dividends=0,
                trust=0,
                rank=0,
                emission=0,
            )
        )
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    # Lists that are empty in every row would be list<null>: typed as sync-metadata writes them.
    for name in ["weight_uids", "weight_values", "bond_uids", "bond_values"]:
        columns[name] = pa.array(columns[name], type=pa.list_(pa.uint16()))
    # The sync block and its hash seed sample-batches (`--metagraph metagraph.parquet`), as
    # sync-metadata records them; the hash is made up.
    sync_hash = "0x" + hashlib.sha256(b"valkit demo sync block").hexdigest()
    # The epoch's parameters as sync-metadata records them (spec 293's defaults, tempo 360).
    epoch = {"tempo": 360, "activity_cutoff": 5000, "owner_uid": "", "tao_weight": 971_718_665_099_567_868, "stake_threshold": 0,
             "max_allowed_validators": 64, "kappa": 32767, "bonds_penalty": 65535, "bonds_moving_average": 900_000,
             "yuma3": "false", "liquid_alpha": "false", "alpha_low": 45875, "alpha_high": 58982, "alpha_sigmoid_steepness": 1000}
    write(out / "metagraph.parquet", columns, meta(
        "metagraph", 2, netuid=NETUID, block=CUR_BLOCK, endpoint="demo", sync_block=CUR_BLOCK - CUR_BLOCK % 100, sync_block_hash=sync_hash,
        spec_version=293, tempo=360, **{f"epoch.{k}": v for k, v in epoch.items()},
    ))


def losses(out: Path) -> None:
    rows = []
    for uid, (_, _, base, _) in sorted(MODELS.items()):
        for t, task in enumerate(TASKS):
            for b in range(BATCHES):
                # Per-batch difficulty shared by every model, applied multiplicatively so
                # that clones stay exact clones and relative gaps between models are kept.
                difficulty = 1.0 + 0.1 * t + 0.05 * math.sin(7 * t + b)
                if base is None:
                    reason = "load-failed: model.safetensors is truncated" if uid == 6 else "no-commitment"
                    rows.append((uid, task, b, math.inf, 0, "failed", reason))
                else:
                    loss = base * difficulty
                    rows.append((uid, task, b, loss, 4095, "ok", None))
    columns = {
        "uid": [r[0] for r in rows],
        "hotkey": [hotkey(r[0]) for r in rows],
        "competition_id": [COMPETITION] * len(rows),
        "task": [r[1] for r in rows],
        "batch_index": [r[2] for r in rows],
        "loss": [r[3] for r in rows],
        "n_tokens": [r[4] for r in rows],
        "status": [r[5] for r in rows],
        "reason": [r[6] for r in rows],
    }
    write(out / "losses.parquet", columns, meta("losses", device="demo", dtype="f32"))


def tracker(out: Path) -> None:
    rows = []
    for comp, winner in ((2, 13), (4, 1)):
        for uid in range(N_UIDS):
            rows.append(dict(competition_id=comp, uid=uid, weight=1.0 if uid == winner else 0.0, keep=uid in (winner, 7, 8) if comp == 4 else uid == winner))
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    columns["weight"] = pa.array(columns["weight"], pa.float32())
    write(out / "tracker.parquet", columns, meta("tracker", note="previous step of the demo"))


def corpora(out: Path) -> None:
    import datasets_fixture as fx

    for dataset, configs in {"web": {"crawl-2024-a": 120, "crawl-2024-b": 80}, "math": {"proofs": 150}}.items():
        d = out / "corpora" / dataset
        d.mkdir(parents=True, exist_ok=True)
        for config, n in configs.items():
            lines = [json.dumps({"text": fx.row_text(dataset, config, "train", i)}) for i in range(n)]
            (d / f"{config}.jsonl").write_text("\n".join(lines) + "\n")


# The demo subnet (testdata/demo/competitions.toml): uid -> (tiny model under testdata/models, commit block).
DEMO_SUBNET = {
    0: ("llama", 900), 1: ("llama-gqa-tied-theta", 950), 2: ("llama-head-dim-bias", 980),
    3: ("llama3-rope-scaling", 990), 4: ("mistral-sliding-window", 995), 5: ("qwen2", 999),
}


def demo_subnet(out: Path) -> None:
    """A metagraph and a models table for the demo subnet, whose models are the tiny models."""
    uids = sorted(DEMO_SUBNET)
    write(out / "subnet-metagraph.parquet", {
        "netuid": [999] * len(uids), "uid": uids, "hotkey": [hotkey(100 + u) for u in uids],
        "coldkey": [hotkey(200 + u) for u in uids], "stake": [1.0] * len(uids), "validator_permit": [False] * len(uids),
        "registration_block": [100] * len(uids),
        "commitment": [f"demo:{DEMO_SUBNET[u][0]}:None:None:1" for u in uids],
        "commit_block": [DEMO_SUBNET[u][1] for u in uids], "competition_id": [1] * len(uids),
    }, meta("metagraph", netuid=999, block=1000))
    write(out / "models.parquet", {
        "uid": uids, "hotkey": [hotkey(100 + u) for u in uids], "competition_id": [1] * len(uids),
        "repo_id": [f"demo/{DEMO_SUBNET[u][0]}" for u in uids], "commit_block": [DEMO_SUBNET[u][1] for u in uids],
        # Relative to the repository root, where `make demo` runs.
        "local_path": [f"testdata/models/{DEMO_SUBNET[u][0]}" for u in uids], "status": ["ok"] * len(uids),
    }, meta("models", note="the tiny models of testdata/models"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "testdata" / "demo")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    metagraph(args.out)
    losses(args.out)
    tracker(args.out)
    corpora(args.out)
    demo_subnet(args.out)
    print(f"wrote {args.out}/{{metagraph,losses,tracker,subnet-metagraph,models}}.parquet and corpora/")


if __name__ == "__main__":
    main()
