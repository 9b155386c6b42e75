#!/usr/bin/env bash
# The Slurm path for real: starts a single-node Slurm cluster on this machine (munged, slurmctld
# and slurmd, all state in a temporary directory), prepares a demo step (the demo hub's seven
# tiny models, a copy-cat's among them, fetched with --all, and the demo competition's batches),
# then evaluates it
#   1. on one host: eval-losses (shard 0/1) + compute-wins                      (timed)
#   2. on one host, shard by shard: eval-losses K/N for each K + compute-wins   (the byte reference)
#   3. on Slurm: scripts/slurm/submit-step.sh N (an array of N + a dependent compute-wins) (timed)
# and checks: Slurm's losses-K.parquet and wins/weights/tracker equal run 2's byte for byte; the
# shards' rows together are run 1's rows; Slurm's wins/weights/tracker equal run 1's (unsharded)
# byte for byte. Exits non-zero on any mismatch.
#
#   scripts/slurm/test-cluster.sh          (as root; installs slurm-wlm and munge with apt-get
#                                          when slurmctld is missing; about a minute)
#
# VALKIT and DEMO_HUB name the built binaries [$CARGO_TARGET_DIR or target, /debug/valkit and
# /debug/examples/demo_hub: cargo build --bin valkit --example demo_hub]. SHARDS [3].
# KEEP_TMP=1 keeps the temporary directory (it is kept anyway when the test fails).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
VALKIT=$(realpath "${VALKIT:-$target/debug/valkit}")
DEMO_HUB=$(realpath "${DEMO_HUB:-$target/debug/examples/demo_hub}")
SHARDS=${SHARDS:-3}
COMPETITIONS=$root/testdata/demo/competitions.toml

say() { printf '== %s\n' "$*"; }
die() { printf 'test-cluster: FAIL: %s\n' "$*" >&2; exit 1; }
now() { echo "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || die "run as root: slurmd starts jobs as their users, and the packages may need installing"
for bin in "$VALKIT" "$DEMO_HUB"; do
    [ -x "$bin" ] || die "$bin is missing: cargo build --bin valkit --example demo_hub (or set VALKIT and DEMO_HUB)"
done

# -- (a) the packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
    || ! command -v sbatch >/dev/null; then
    say "installing slurm-wlm and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# A short path: munge's socket lives here, and Unix socket paths are limited to 107 bytes.
tmp=$(mktemp -d /tmp/valkit-slurm.XXXXXX)
pids=()
daemons_up=0
ok=0
show_logs() {
    for f in "$tmp"/slurm/slurmctld.log "$tmp"/slurm/slurmd.log "$tmp"/munge/munged.log "$tmp"/step/slurm/*.out; do
        [ -s "$f" ] || continue
        printf -- '---- %s (last 40 lines)\n' "$f" >&2
        tail -n 40 "$f" >&2
    done
}
cleanup() {
    local code=$?
    if [ "$code" -ne 0 ] && [ "$daemons_up" = 1 ]; then show_logs; fi
    if [ "$daemons_up" = 1 ]; then
        # Jobs first, so that no slurmstepd outlives its slurmd.
        scancel --full --quiet --user=root 2>/dev/null || true
        for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
    fi
    # Newest first: slurmd, slurmctld, munged (the demo hub is gone by then).
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "$ok" = 1 ] && [ "${KEEP_TMP:-0}" != 1 ]; then rm -rf "$tmp"; else echo "test-cluster: files kept in $tmp" >&2; fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # the first port from $1 on that nothing listens on
    local port
    for port in $(seq "$1" $(($1 + 100))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    die "no free port from $1"
}

# -- (b) the cluster: munged with its own key and socket, then slurmctld and slurmd, in the foreground
# of background jobs so that their pids are ours to stop.
say "starting munged, slurmctld and slurmd (state in $tmp)"
mkdir -p "$tmp/munge" "$tmp/slurm/state" "$tmp/slurm/spool"
chmod 700 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
socket=$tmp/munge/munge.socket
munged --foreground --force --key-file="$tmp/munge/munge.key" --socket="$socket" \
    --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/munge/munged.log" --seed-file="$tmp/munge/munged.seed" \
    >"$tmp/munge/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do munge -n -S "$socket" 2>/dev/null | unmunge -S "$socket" >/dev/null 2>&1 && break; sleep 0.1; done
munge -n -S "$socket" | unmunge -S "$socket" >/dev/null || { cat "$tmp/munge/munged.out" "$tmp/munge/munged.log" >&2; die "munged did not come up"; }

host=$(hostname -s)
ctld_port=$(free_port 16817)
slurmd_port=$(free_port $((ctld_port + 1)))
# This machine as slurmd sees it (CPUs, sockets, cores, RealMemory), addressed on loopback.
node=$(slurmd -C | head -n 1)
[[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
: >"$tmp/slurm/plugstack.conf"
export SLURM_CONF=$tmp/slurm/slurm.conf
cat >"$SLURM_CONF" <<EOF
# A single-node cluster for scripts/slurm/test-cluster.sh; nothing outside $tmp.
ClusterName=valkit-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$tmp/slurm/state
SlurmdSpoolDir=$tmp/slurm/spool
SlurmctldPidFile=$tmp/slurm/slurmctld.pid
SlurmdPidFile=$tmp/slurm/slurmd.pid
SlurmctldLogFile=$tmp/slurm/slurmctld.log
SlurmdLogFile=$tmp/slurm/slurmd.log
PlugStackConfig=$tmp/slurm/plugstack.conf
MailProg=/bin/true
# No cgroups (containers often have none): processes tracked through /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
# Without accounting, scontrol is where finished jobs' states are read: keep them an hour.
MinJobAge=3600
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -c >"$tmp/slurm/slurmctld.out" 2>&1 &
pids+=($!)
daemons_up=1
slurmd -D >"$tmp/slurm/slurmd.out" 2>&1 &
pids+=($!)
started=$(now)
deadline=$((SECONDS + 30))
state=
while [ "$SECONDS" -lt "$deadline" ]; do
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || { cat "$tmp"/slurm/*.out >&2; die "a daemon exited (pid $pid)"; }
    done
    state=$(sinfo -h -N -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.5
done
if [ "$state" != idle ]; then
    cat "$tmp"/slurm/*.out >&2
    scontrol show node >&2 2>/dev/null || true
    die "the cluster did not come up within 30 s (node state: ${state:-slurmctld not answering})"
fi
say "cluster up in $(secs "$started" "$(now)") s: node $host, $(sinfo -h -o '%c CPUs') on ports $ctld_port/$slurmd_port"

# -- (c) the step, as scripts/run-loop.sh prepares one (every model: fetch-models --all).
say "preparing the demo step: fetch-models from the demo hub, sample-batches"
mkdir -p "$tmp/hub" "$tmp/step"
"$DEMO_HUB" "$root" "$tmp/hub" >"$tmp/hub/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 600); do
    [ -s "$tmp/hub/hub.url" ] && break
    kill -0 "$hub_pid" 2>/dev/null || { cat "$tmp/hub/hub.log" >&2; die "demo_hub exited"; }
    sleep 0.1
done
[ -s "$tmp/hub/hub.url" ] || die "the demo hub did not come up"
export HF_HUB_CACHE=$tmp/hf-cache
cp "$tmp/hub/metagraph.parquet" "$tmp/step/metagraph.parquet"
HF_ENDPOINT=$(cat "$tmp/hub/hub.url") "$VALKIT" -q fetch-models --competitions "$COMPETITIONS" \
    --metagraph "$tmp/step/metagraph.parquet" --all --out "$tmp/step/models.parquet"
kill "$hub_pid"
wait "$hub_pid" 2>/dev/null || true
# From here on nothing may reach for the network.
export HF_HUB_OFFLINE=1
block=$("$VALKIT" inspect --meta "$tmp/step/metagraph.parquet" | sed -n 's/.*"provenance":{[^}]*"block":"\([0-9]*\)".*/\1/p')
competition=$("$VALKIT" profile step --competitions "$COMPETITIONS" --block "${block:?}" --step 0)
"$VALKIT" -q sample-batches --competitions "$COMPETITIONS" --competition-id "$competition" \
    --metagraph "$tmp/step/metagraph.parquet" --tokenizer "$root/testdata/tokenizer" --out "$tmp/step/batches.parquet"
models=$("$VALKIT" inspect --csv --columns status "$tmp/step/models.parquet" | grep -c '^ok$' || true)
[ "$models" -ge "$SHARDS" ] || die "only $models models fetched; the test wants at least one per shard"
say "step: $models models, competition $competition at block $block"

# compute-wins as compute-wins.sbatch runs it, into DIR from the given losses tables.
wins() {
    local dir=$1; shift
    local losses=()
    for f in "$@"; do losses+=(--losses "$f"); done
    "$VALKIT" -q compute-wins --competitions "$COMPETITIONS" --competition-id "$competition" \
        --metagraph "$tmp/step/metagraph.parquet" "${losses[@]}" --out-dir "$dir"
}
eval_shard() { # OUT K/N
    "$VALKIT" -q eval-losses --competitions "$COMPETITIONS" --models "$tmp/step/models.parquet" \
        --batches "$tmp/step/batches.parquet" --out "$1" --shard "$2" --resume
}

# -- (d) one host, one shard
say "single host: eval-losses --shard 0/1 + compute-wins"
mkdir -p "$tmp/single"
t0=$(now)
eval_shard "$tmp/single/losses.parquet" 0/1
wins "$tmp/single" "$tmp/single/losses.parquet"
t_single=$(secs "$t0" "$(now)")

# The byte reference for the array: the same N shards, one after another on this host.
say "single host, shard by shard: eval-losses --shard K/$SHARDS for each K + compute-wins"
mkdir -p "$tmp/local"
t0=$(now)
local_losses=()
for ((k = 0; k < SHARDS; k++)); do
    eval_shard "$tmp/local/losses-$k.parquet" "$k/$SHARDS"
    local_losses+=("$tmp/local/losses-$k.parquet")
done
wins "$tmp/local" "${local_losses[@]}"
t_local=$(secs "$t0" "$(now)")

# -- (e) the array on Slurm
say "Slurm: scripts/slurm/submit-step.sh $SHARDS"
t0=$(now)
ids=$(STEP_DIR=$tmp/step COMPETITIONS=$COMPETITIONS VALKIT=$VALKIT "$root/scripts/slurm/submit-step.sh" "$SHARDS")
read -r array_id wins_id <<<"$ids"
if [ -z "$array_id" ] || [ -z "$wins_id" ]; then die "submit-step.sh printed no job ids: $ids"; fi
for _ in $(seq 3000); do # 10 minutes
    [ -z "$(squeue -h -j "$array_id,$wins_id")" ] && break
    sleep 0.2
done
t_slurm=$(secs "$t0" "$(now)")
[ -z "$(squeue -h -j "$array_id,$wins_id")" ] || die "the jobs did not finish within 10 minutes"
# Every array task and the dependent job must have completed with exit 0.
states=$(scontrol -o show job "$array_id"; scontrol -o show job "$wins_id")
done_jobs=$(grep -c 'JobState=COMPLETED .*ExitCode=0:0' <<<"$states" || true)
if [ "$done_jobs" -ne $((SHARDS + 1)) ]; then
    grep -o 'JobId=[0-9]* \(ArrayJobId=[0-9]* ArrayTaskId=[0-9]* \)\?JobName=[^ ]*\|JobState=[^ ]* Reason=[^ ]*\|ExitCode=[^ ]*' <<<"$states" >&2
    die "$done_jobs of $((SHARDS + 1)) jobs completed with exit 0"
fi
say "Slurm: array $array_id ($SHARDS tasks) and compute-wins $wins_id completed"
# When each job ran (second resolution), to tell scheduling waits from work.
{ scontrol -o show job "$array_id"; scontrol -o show job "$wins_id"; } | awk '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = substr($i, length(kv[1]) + 2) }
    id = f["ArrayTaskId"] != "" ? f["ArrayJobId"] "_" f["ArrayTaskId"] : f["JobId"]
    printf "  %-6s %-12s %s .. %s\n", id, f["JobName"], f["StartTime"], f["EndTime"]; delete f }' | sort

# -- (f) the comparisons
say "comparing"
fail=0
check() { # DESCRIPTION, then a command that must succeed
    local what=$1; shift
    if "$@"; then echo "  ok: $what"; else echo "  MISMATCH: $what" >&2; fail=1; fi
}
rows() { "$VALKIT" inspect --csv "$1"; }
meta() { "$VALKIT" inspect --meta "$1"; }
prov() { meta "$1" | grep -o "\"$2\":\"[^\"]*\"" | sed -n '1s/^"[^"]*":"\(.*\)"$/\1/p'; }
for ((k = 0; k < SHARDS; k++)); do
    check "Slurm's losses-$k.parquet = shard $k/$SHARDS on one host, byte for byte" \
        cmp "$tmp/step/losses-$k.parquet" "$tmp/local/losses-$k.parquet"
done
for t in wins weights tracker; do
    check "Slurm's $t.parquet = compute-wins over the same shards on one host, byte for byte" \
        cmp "$tmp/step/$t.parquet" "$tmp/local/$t.parquet"
done
# The shards partition the single run's rows (shards split the models, so the order differs).
rows "$tmp/single/losses.parquet" | head -n 1 >"$tmp/single-losses.header"
rows "$tmp/single/losses.parquet" | tail -n +2 | LC_ALL=C sort >"$tmp/single-losses.rows"
: >"$tmp/shard-losses.unsorted"
for ((k = 0; k < SHARDS; k++)); do
    rows "$tmp/step/losses-$k.parquet" | head -n 1 >"$tmp/shard-$k.header"
    check "losses-$k.parquet has the single run's columns" cmp -s "$tmp/shard-$k.header" "$tmp/single-losses.header"
    rows "$tmp/step/losses-$k.parquet" | tail -n +2 >>"$tmp/shard-losses.unsorted"
done
LC_ALL=C sort "$tmp/shard-losses.unsorted" >"$tmp/shard-losses.rows"
check "the $SHARDS shards' loss rows together = the single run's $(wc -l <"$tmp/single-losses.rows") rows (CSV, sorted)" \
    cmp "$tmp/shard-losses.rows" "$tmp/single-losses.rows"
# compute-wins records the digest of the loss rows, not of the files they came in: the array's
# outputs are the unsharded single run's, byte for byte.
for t in wins weights tracker; do
    check "$t.parquet = the unsharded single-host run's, byte for byte" \
        cmp "$tmp/step/$t.parquet" "$tmp/single/$t.parquet"
done
k8s_check() { "$root/scripts/k8s/check.sh" >/dev/null; }
check "the k8s manifests parse and run the Slurm scripts' lines (scripts/k8s/check.sh)" k8s_check
[ "$fail" = 0 ] || die "the Slurm run does not match the single-host run (files in $tmp)"

# -- (g) wall times
say "wall times ($models models, $(wc -l <"$tmp/single-losses.rows") loss rows, $(nproc) CPUs, one machine)"
printf '  %-62s %6s s\n' "single host: eval-losses 0/1 + compute-wins" "$t_single" \
    "single host: $SHARDS shards in sequence + compute-wins" "$t_local" \
    "Slurm: array of $SHARDS + dependent compute-wins (submit..done)" "$t_slurm"
echo "  (all on this one machine: the array shares its CPUs, so it cannot beat one host here; across"
echo "   N GPU nodes the evaluation part divides by about N while the scheduling overhead stays.)"
ok=1
say "PASS"
