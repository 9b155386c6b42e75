#!/usr/bin/env bash
# What `make demo` and `make test` need beyond cargo, installed on first use (Debian's packages,
# as CI does on a fresh machine): the commands README's two set-up lines run call this first.
#
#   scripts/setup.sh demo   python3, node and npm (chopsticks serves the demo's local subtensor
#                           chain; without them the demo reads a stored metagraph), curl, flock
#                           and setsid (scripts/run-loop.sh)
#   scripts/setup.sh test   the same, plus procps (the fault suite signals workers with kill(1))
#                           and Chromium (the report test renders the page headless)
#
# Missing packages are installed with apt-get when this runs as root or sudo needs no password;
# otherwise it names them and the command to install them. VALKIT_NO_SETUP=1 skips it.
set -euo pipefail
purpose=${1:?usage: scripts/setup.sh demo|test}
[ "${VALKIT_NO_SETUP:-0}" = 1 ] && exit 0

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need python3 python3
need node nodejs
need npm npm
need curl curl
need flock util-linux
need setsid util-linux
if [ "$purpose" = test ]; then
    [ -x /usr/bin/kill ] || [ -x /bin/kill ] || missing+=(procps)
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
# One package may be named twice (flock and setsid are both util-linux).
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo)
    else
        as_root=(none)
    fi
    if [ "${as_root[*]}" != none ]; then
        echo "setup: installing ${missing[*]} (Debian packages; VALKIT_NO_SETUP=1 skips this)" >&2
        log=$(mktemp)
        # apt's progress goes to a log, shown only if the install fails.
        if ! { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
            cat "$log" >&2
            rm -f "$log"
            echo "setup: installing ${missing[*]} failed (above)" >&2
            exit 1
        fi
        rm -f "$log"
        exit 0
    fi
fi
echo "setup: missing ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]}) or set VALKIT_NO_SETUP=1" >&2
# The demo runs without a chain when node is missing; the tests need everything.
[ "$purpose" = demo ] && exit 0
exit 1
