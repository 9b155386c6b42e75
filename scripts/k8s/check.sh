#!/usr/bin/env bash
# Checks the Kubernetes manifests without a cluster: each parses as YAML (when python3 has the
# yaml module), the eval Job is Indexed with completions = parallelism = SHARDS, and the shell
# lines between the `valkit-*-command` markers are those of the Slurm scripts, so the two ways of
# running a step cannot drift apart. scripts/slurm/test-cluster.sh runs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

# The lines strictly between `# TAG: begin` and `# TAG: end`, less the begin marker's indentation.
between() {
    awk -v tag="$1" '
        $0 ~ "^[ ]*# " tag ": begin" { match($0, /^[ ]*/); ind = RLENGTH; on = 1; n++; next }
        $0 ~ "^[ ]*# " tag ": end" { on = 0; next }
        on { print substr($0, ind + 1) }
        END { if (n != 1) { print "expected one " tag " block, found " n+0 > "/dev/stderr"; exit 1 } }'
}

status=0
same() { # TAG SBATCH YAML
    local a b
    if ! a=$(between "$1" <"$2") || ! b=$(between "$1" <"$3"); then status=1; return; fi
    if [ -z "$a" ] || [ "$a" != "$b" ]; then
        echo "FAIL: the $1 lines of $3 differ from $2:" >&2
        diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") >&2 || true
        status=1
    else
        echo "ok: $3 runs the $1 lines of $2 ($(printf '%s\n' "$a" | wc -l) lines)"
    fi
}
same valkit-shard-command scripts/slurm/eval-array.sbatch scripts/k8s/eval-indexed-job.yaml
same valkit-wins-command scripts/slurm/compute-wins.sbatch scripts/k8s/compute-wins-job.yaml

if python3 -c 'import yaml' 2>/dev/null; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 - "$tmp" scripts/k8s/eval-indexed-job.yaml scripts/k8s/compute-wins-job.yaml <<'EOF' || status=1
import sys, yaml
ok = True
out = sys.argv[1]
for path in sys.argv[2:]:
    docs = list(yaml.safe_load_all(open(path)))
    for job in docs:
        assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job", path
        (c,) = job["spec"]["template"]["spec"]["containers"]
        assert c["command"] == ["bash", "-c"] and len(c["args"]) == 1, path
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        # The script as the container gets it, for the marker comparison below.
        name = path.rsplit("/", 1)[-1].removesuffix(".yaml")
        open(f"{out}/{name}.sh", "w").write(c["args"][0])
        if job["spec"].get("completionMode") == "Indexed":
            n = job["spec"]["completions"]
            if not (n == job["spec"]["parallelism"] == int(env["SHARDS"])):
                print(f"FAIL: {path}: completions {n}, parallelism {job['spec']['parallelism']}, SHARDS {env['SHARDS']} differ", file=sys.stderr)
                ok = False
    print(f"ok: {path} parses ({len(docs)} Job)")
sys.exit(0 if ok else 1)
EOF
    # The same comparison on the parsed scripts: YAML's block scalar must not have changed them.
    if [ -f "$tmp/eval-indexed-job.sh" ] && [ -f "$tmp/compute-wins-job.sh" ]; then
        same valkit-shard-command scripts/slurm/eval-array.sbatch "$tmp/eval-indexed-job.sh"
        same valkit-wins-command scripts/slurm/compute-wins.sbatch "$tmp/compute-wins-job.sh"
        for f in "$tmp"/*.sh; do bash -n "$f" || { echo "FAIL: $f is not valid bash" >&2; status=1; }; done
    fi
else
    echo "skipped: YAML parsing (python3 with the yaml module is not installed)"
fi
exit "$status"
