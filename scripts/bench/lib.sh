# Shared by the scripts/bench/*.sh comparisons (sourced; needs $work set to a scratch directory).

# timed SIDE OUT COMMAND...: runs COMMAND with its stdout in OUT and appends one line to
# $work/runs.jsonl: {"side", "wall" (s), "kb" (peak RSS), "stage" (OUT's JSON, or null)}.
timed() {
    local side=$1 out=$2 wall kb stage=null
    shift 2
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$out"
    read -r wall kb < "$work/time"
    if [ -s "$out" ]; then stage=$(cat "$out"); fi
    echo "{\"side\": \"$side\", \"wall\": $wall, \"kb\": $kb, \"stage\": $stage}" >> "$work/runs.jsonl"
}

# alternate RUNS SIDE...: runs the side functions RUNS times, each time in an order rotated by
# one (first second, second first, ...; with three: a b c, b c a, c a b), so that drift on a
# shared machine hits every side alike.
alternate() {
    local runs=$1 i j
    shift
    local sides=("$@") n=$#
    for i in $(seq 0 $((runs - 1))); do
        for j in $(seq 0 $((n - 1))); do
            "${sides[$(((i + j) % n))]}"
        done
    done
}

# median X...: the median of the numbers given.
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# seconds_since START: wall seconds since START (an $EPOCHREALTIME), two decimals.
seconds_since() {
    awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'
}
