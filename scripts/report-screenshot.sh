#!/usr/bin/env bash
# Renders a `valkit report` page with headless Chromium into a PNG, as docs/report.png was made:
#   make demo && scripts/report-screenshot.sh target/demo/sn9/report.html docs/report.png
# HEIGHT (pixels, default 2200) sets how much of the page is captured.
set -euo pipefail
page=$(realpath "${1:?usage: scripts/report-screenshot.sh REPORT.html OUT.png}")
out=${2:?usage: scripts/report-screenshot.sh REPORT.html OUT.png}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome) || {
    echo "no Chromium found (apt-get install chromium)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# Root needs --no-sandbox; a throwaway profile keeps the user's own untouched.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$profile" --window-size="1000,${HEIGHT:-2200}" \
    --screenshot="$(realpath -m "$out")" "file://$page" 2>/dev/null
echo "wrote $out"
