#!/usr/bin/env python3
"""Reference vectors for the drand reveal round that Bittensor's Python SDK puts into timelocked
commit-reveal (CRv4) weight commits, computed by the real `bittensor-drand` package, for
valkit's Rust port (see ../shared/spec/chain-crv4.md, "Reveal round").

Two rules, two package versions (the module is `bittensor_drand` in both, so one venv each):

  v1  bittensor-drand 1.2.0  `get_encrypted_commit(uids, weights, version_key, tempo,
      current_block, netuid, subnet_reveal_period_epochs, block_time, hotkey) -> (bytes, round)`
      -> drand::generate_commit, sdist 1.2.0 src/drand.rs:190-258
         (epoch modulo formula 203-225, SystemTime::now 230-233, round 238-243).
      Removed in 2.0.0.
  v2  bittensor-drand 2.0.0  `get_encrypted_commit_v2(uids, weights, version_key,
      last_epoch_block, pending_epoch_at, subnet_epoch_index, tempo, blocks_since_last_step,
      current_block, subnet_reveal_period_epochs, block_time, hotkey) -> (bytes, round)`
      (sdist 2.0.0 bittensor_drand/__init__.py:17-67, src/python_bindings.rs:30-71)
      -> drand::generate_commit_v2, src/drand.rs:160-204 (+3 at 178-179, blocks counted from
         the head block 180, SystemTime::now 183-186, round 188-193)
      -> epoch_schedule::predict_first_reveal_block, src/epoch_schedule.rs:106-141, using
         should_run_epoch 43-57, current_epoch_pre_run_coinbase 61-68,
         simulate_run_coinbase 74-86, advance_blocks 90-99;
         constants (src/constants.rs): MAX_TEMPO 50_400 (6, 9), GENESIS_TIME 1_692_803_367 (17),
         DRAND_PERIOD 3 (20), SECURITY_BLOCK_OFFSET 3 (39), COMMIT_INCLUSION_BLOCK_OFFSET 1 (44),
         max_simulation_blocks = period*50_400 + 50_400 (47-51).
  Neither version has a Python function that returns the round (or the reveal block) without
  encrypting: the encrypting call returns (ciphertext, reveal_round) and only the round is kept.

Time: both read the wall clock inside Rust (`SystemTime::now().as_secs_f64()`, CLOCK_REALTIME,
the clock Python's time.time_ns() reads); it cannot be pinned from Python, so each call is
bracketed by time.time_ns() before and after (see the JSON's "note").

Run (PyPI only; the wheels are prebuilt, nothing is compiled):

  python3 -m venv /tmp/drandvenv  && /tmp/drandvenv/bin/pip install bittensor-drand==2.0.0
  python3 -m venv /tmp/drandvenv1 && /tmp/drandvenv1/bin/pip install bittensor-drand==1.2.0
  /tmp/drandvenv/bin/python scripts/reveal_round_vectors.py \
      --v1-python /tmp/drandvenv1/bin/python > testdata/chain/reveal-rounds.json

Without --v1-python (or --v2-python when run under 1.2.0) only the rule the current interpreter's
package supports is produced. Stdlib + bittensor_drand only.
"""

import argparse
import importlib.metadata
import json
import math
import subprocess
import sys
import time

GENESIS_TIME = 1_692_803_367  # constants.rs:17 (2.0.0), drand.rs:18 (1.2.0)
DRAND_PERIOD = 3  # constants.rs:20 / drand.rs:19
SECURITY_BLOCK_OFFSET = 3  # constants.rs:39 / drand.rs:222 (1.2.0, local const)
MAX_TEMPO = 50_400  # constants.rs:6
PROBE_BLOCK_TIME = 3.0  # one block == one drand round: makes the reveal block readable

UIDS = [0, 1, 2]
WEIGHTS = [65535, 1000, 0]
VERSION_KEY = 1
HOTKEY = bytes(range(32))

V1_CASES = [
    # (name, current_block, netuid, tempo, reveal_period, block_time)
    ("v1_netuid0_block0", 0, 0, 360, 1, 12.0),
    ("v1_netuid0_before_boundary", 359, 0, 360, 1, 12.0),
    ("v1_netuid0_at_boundary", 360, 0, 360, 1, 12.0),
    ("v1_netuid0_mid", 1000, 0, 360, 1, 12.0),
    ("v1_netuid1_t360_p1", 4_500_000, 1, 360, 1, 12.0),
    ("v1_netuid1_t360_p2", 4_500_000, 1, 360, 2, 12.0),
    ("v1_netuid1_t360_p3_fast", 4_500_000, 1, 360, 3, 0.25),
    ("v1_netuid18_t99_p2", 4_500_123, 18, 99, 2, 12.0),
    ("v1_netuid18_t99_p3_fast", 4_500_123, 18, 99, 3, 0.25),
    ("v1_netuid3_t10_p1_fast", 1234, 3, 10, 1, 0.25),
    ("v1_netuid3_t10_p3", 1234, 3, 10, 3, 12.0),
    ("v1_netuid65535_t360_p2", 5_000_000, 65535, 360, 2, 12.0),
    # period 0: target block lies before current_block, blocks_until_ingest saturates at 0
    ("v1_period0_saturates", 1000, 0, 360, 0, 12.0),
]

V2_CASES = [
    # (name, last_epoch_block, pending_epoch_at, subnet_epoch_index, tempo,
    #  blocks_since_last_step, current_block, reveal_period, block_time)
    ("v2_plain_t360_p1", 1000, 0, 50, 360, 100, 1100, 1, 12.0),
    ("v2_plain_t360_p3", 1000, 0, 50, 360, 100, 1100, 3, 12.0),
    ("v2_plain_t360_p1_fast", 1000, 0, 50, 360, 100, 1100, 1, 0.25),
    ("v2_plain_t10_p1", 5000, 0, 7, 10, 3, 5003, 1, 12.0),
    ("v2_plain_t10_p3_fast", 5000, 0, 7, 10, 3, 5003, 3, 0.25),
    ("v2_head_at_last_epoch", 1000, 0, 50, 360, 0, 1000, 1, 12.0),
    ("v2_head_one_before_fire", 1000, 0, 50, 360, 358, 1358, 1, 12.0),
    # inclusion block (head+1) fires: commit epoch = index + 1
    ("v2_inclusion_fires_t360_p1", 1000, 0, 50, 360, 359, 1359, 1, 12.0),
    ("v2_inclusion_fires_t360_p3", 1000, 0, 50, 360, 359, 1359, 3, 12.0),
    ("v2_inclusion_fires_t10_p1", 5000, 0, 7, 10, 9, 5009, 1, 12.0),
    ("v2_overdue_epoch_t360_p1", 1000, 0, 50, 360, 1000, 2000, 1, 12.0),
    # PendingEpochAt > 0 fires before the tempo boundary
    ("v2_pending_early_t360_p1", 1000, 1100, 50, 360, 50, 1050, 1, 12.0),
    ("v2_pending_early_t360_p3", 1000, 1100, 50, 360, 50, 1050, 3, 12.0),
    ("v2_pending_early_t10_p1", 5000, 5004, 7, 10, 1, 5001, 1, 12.0),
    ("v2_pending_at_inclusion_t360_p1", 1000, 1051, 50, 360, 50, 1050, 1, 12.0),
    ("v2_pending_in_past_t360_p1", 1000, 1040, 50, 360, 50, 1050, 1, 12.0),
    ("v2_pending_after_boundary_t10_p1", 5000, 5020, 7, 10, 3, 5003, 1, 12.0),
    # BlocksSinceLastStep > MAX_TEMPO forces an epoch; 50_400 itself only after the increment
    ("v2_bsls_50399_t360_p1", 1000, 0, 50, 360, 50_399, 1100, 1, 12.0),
    ("v2_bsls_50400_t360_p1", 1000, 0, 50, 360, 50_400, 1100, 1, 12.0),
    ("v2_bsls_50401_t360_p1", 1000, 0, 50, 360, 50_401, 1100, 1, 12.0),
    ("v2_bsls_50401_t360_p3", 1000, 0, 50, 360, 50_401, 1100, 3, 12.0),
    ("v2_bsls_50401_t10_p1_fast", 5000, 0, 7, 10, 50_401, 5003, 1, 0.25),
    ("v2_t50400_p3", 100_000, 0, 2, 50_400, 10, 100_010, 3, 12.0),
    ("v2_t1_p2", 1000, 0, 0, 1, 0, 1000, 2, 12.0),
    # package's own vectors (sdist src/epoch_schedule_vectors.rs:330-375)
    ("v2_pkg_cycle_reset", 10, 0, 0, 50, 0, 10, 1, 12.0),
    ("v2_pkg_pending_fires_before_auto", 80, 95, 0, 20, 0, 91, 1, 12.0),
    ("v2_tempo_zero_error", 10, 0, 0, 0, 0, 10, 1, 12.0),
]

V1_KEYS = ("current_block", "netuid", "tempo", "reveal_period", "block_time")
V2_KEYS = ("last_epoch_block", "pending_epoch_at", "subnet_epoch_index", "tempo",
           "blocks_since_last_step", "current_block", "reveal_period", "block_time")


# ---- ports of the sdist formulas, used only to cross-check the package and to pick calls whose
# [before, after] window does not straddle a round boundary ----

def round_from(now, blocks_until_ingest, block_time):
    r = math.floor((now + blocks_until_ingest * block_time - GENESIS_TIME) / DRAND_PERIOD)
    return max(1, r)


def port_v1_target_block(c):
    t1, n1 = c["tempo"] + 1, c["netuid"] + 1
    epoch = (c["current_block"] + n1) // t1
    first = max(0, (epoch + c["reveal_period"]) * t1 - n1)
    return first, first + SECURITY_BLOCK_OFFSET


def port_v2_reveal_block(c):
    st = dict(leb=c["last_epoch_block"], pend=c["pending_epoch_at"],
              idx=c["subnet_epoch_index"], bsls=c["blocks_since_last_step"])
    tempo = c["tempo"]
    if tempo == 0:
        return None

    def runs(s, b):
        if s["pend"] > 0 and b >= s["pend"]:
            return True
        if s["bsls"] > MAX_TEMPO:
            return True
        return max(0, b - s["leb"]) >= tempo

    def pre(s, b):
        return s["idx"] + (1 if runs(s, b) else 0)

    def step(s, b):
        s = dict(s, bsls=s["bsls"] + 1)
        if runs(s, b):
            s.update(leb=b, pend=0, idx=s["idx"] + 1, bsls=0)
        return s

    ext = c["current_block"] + 1
    target = pre(st, ext) + c["reveal_period"]
    for r in range(ext, ext + c["reveal_period"] * MAX_TEMPO + MAX_TEMPO + 1):
        if pre(st, r) == target:
            return r
        st = step(st, r)
    return None


def call(rule, c, block_time):
    import bittensor_drand as bd
    if rule == "v1":
        args = (UIDS, WEIGHTS, VERSION_KEY, c["tempo"], c["current_block"], c["netuid"],
                c["reveal_period"], block_time, HOTKEY)
        f = bd.get_encrypted_commit
    else:
        args = (UIDS, WEIGHTS, VERSION_KEY, c["last_epoch_block"], c["pending_epoch_at"],
                c["subnet_epoch_index"], c["tempo"], c["blocks_since_last_step"],
                c["current_block"], c["reveal_period"], block_time, HOTKEY)
        f = bd.get_encrypted_commit_v2
    before = time.time_ns()
    try:
        ct, rnd = f(*args)
        err = None
    except ValueError as e:
        ct, rnd, err = b"", None, str(e)
    after = time.time_ns()
    return rnd, len(ct), err, before, after


def bracketed(rule, c, block_time, blocks_until):
    """Calls the package; retries (up to 20 times) while the port says the [before, after] window
    straddles a round boundary, so that almost every vector has one unambiguous round."""
    for attempt in range(20):
        rnd, ct_len, err, b, a = call(rule, c, block_time)
        if err is not None or blocks_until is None:
            break
        if round_from(b / 1e9, blocks_until, block_time) == round_from(a / 1e9, blocks_until,
                                                                         block_time):
            break
    return rnd, ct_len, err, b, a, attempt + 1


def run_rule(rule):
    cases = V1_CASES if rule == "v1" else V2_CASES
    keys = V1_KEYS if rule == "v1" else V2_KEYS
    out = []
    for row in cases:
        c = dict(zip(keys, row[1:]))
        if rule == "v1":
            first, target = port_v1_target_block(c)
        else:
            first = port_v2_reveal_block(c)
            target = None if first is None else first + SECURITY_BLOCK_OFFSET
        blocks_until = None if target is None else max(0, target - c["current_block"])

        rnd, ct_len, err, b, a, tries = bracketed(rule, c, c["block_time"], blocks_until)
        case = {"name": row[0], "rule": rule, "inputs": c, "round": rnd, "error": err,
                "now_before_ns": b, "now_after_ns": a,
                "now_before": b / 1e9, "now_after": a / 1e9, "ciphertext_len": ct_len}
        if err is None:
            # probe call, block_time 3.0: round = floor((now-G)/3) + blocks_until_ingest, so the
            # package's own (reveal block + 3) - current_block can be read off the round.
            p_rnd, _, _, pb, pa, _ = bracketed(rule, c, PROBE_BLOCK_TIME, blocks_until)
            base_b = math.floor((pb / 1e9 - GENESIS_TIME) / DRAND_PERIOD)
            base_a = math.floor((pa / 1e9 - GENESIS_TIME) / DRAND_PERIOD)
            if base_b == base_a:
                k = p_rnd - base_b
                case["derived_blocks_until_ingest"] = k
                case["derived_target_ingest_block"] = c["current_block"] + k if k > 0 else None
                case["derived_first_reveal_block"] = (c["current_block"] + k
                                                      - SECURITY_BLOCK_OFFSET if k > 0 else None)
            case["probe"] = {"block_time": PROBE_BLOCK_TIME, "round": p_rnd,
                             "now_before_ns": pb, "now_after_ns": pa}
            lo = round_from(b / 1e9, blocks_until, c["block_time"])
            hi = round_from(a / 1e9, blocks_until, c["block_time"])
            case["round_unambiguous"] = lo == hi
            port_ok = lo <= rnd <= hi and (
                "derived_blocks_until_ingest" not in case
                or case["derived_blocks_until_ingest"] == blocks_until)
            case["port_first_reveal_block"] = first
            case["port_agrees"] = port_ok
            if not port_ok:
                print(f"WARNING {row[0]}: package disagrees with the sdist port "
                      f"(round {rnd} not in [{lo}, {hi}] or blocks {blocks_until})",
                      file=sys.stderr)
        out.append(case)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rule", choices=["v1", "v2"], help="internal: one rule, JSON list")
    ap.add_argument("--v1-python", help="python of a venv with bittensor-drand==1.2.0")
    ap.add_argument("--v2-python", help="python of a venv with bittensor-drand==2.0.0")
    args = ap.parse_args()

    import bittensor_drand as bd
    version = importlib.metadata.version("bittensor-drand")
    here_rule = "v2" if hasattr(bd, "get_encrypted_commit_v2") else "v1"
    if args.rule:
        if args.rule != here_rule:
            sys.exit(f"bittensor-drand {version} here has no {args.rule} function")
        json.dump({"package_version": version, "cases": run_rule(args.rule)}, sys.stdout)
        return

    results = {here_rule: {"package_version": version, "cases": run_rule(here_rule)}}
    other = "v1" if here_rule == "v2" else "v2"
    other_py = args.v1_python if other == "v1" else args.v2_python
    if other_py:
        p = subprocess.run([other_py, __file__, "--rule", other], check=True,
                           capture_output=True, text=True)
        sys.stderr.write(p.stderr)
        results[other] = json.loads(p.stdout)

    doc = {
        "generator": "scripts/reveal_round_vectors.py",
        "note": (
            "Reveal rounds computed by the real bittensor-drand package (v1: 1.2.0 "
            "get_encrypted_commit; v2: 2.0.0 get_encrypted_commit_v2, ciphertext discarded; "
            "uids/weights/version_key/hotkey do not affect the round). The package reads the "
            "wall clock itself (Rust SystemTime::now().as_secs_f64(), CLOCK_REALTIME) and it "
            "cannot be pinned, so now_before_ns/now_after_ns (time.time_ns(), same clock) bracket "
            "the call. round = max(1, floor((now + blocks_until_ingest*block_time - 1692803367)"
            "/3)) with blocks_until_ingest = max(0, first_reveal_block + 3 - current_block) is "
            "nondecreasing in now, so a Rust test accepts `round` iff "
            "f(now_before) <= round <= f(now_after) (equivalently: some now in [before, after] "
            "gives it); round_unambiguous says f(before) == f(after). derived_* come from a "
            "second package call with block_time 3.0 (one block = one round), from which "
            "blocks_until_ingest = round - floor((now-1692803367)/3) is read off; "
            "derived_first_reveal_block = current_block + that - 3. port_* is this script's "
            "Python port of the sdist formulas, a cross-check only. Inputs: v1 netuid, tempo, "
            "reveal_period (subnet_reveal_period_epochs); v2 the epoch-state storage values "
            "and current_block = chain head (the commit is assumed included at head+1)."),
        "constants": {"genesis_time": GENESIS_TIME, "drand_period": DRAND_PERIOD,
                      "security_block_offset": SECURITY_BLOCK_OFFSET, "max_tempo": MAX_TEMPO,
                      "commit_inclusion_block_offset": 1},
        "packages": {r: results[r]["package_version"] for r in results},
        "cases": [c for r in ("v1", "v2") if r in results for c in results[r]["cases"]],
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
