#!/usr/bin/env bash
# browser_check.sh QKV MODELS_DIR ARTIFACTS_DIR
# Makes an attention report for stories260K and opens it in headless Chromium:
# the page's script must finish (body data-status="ready") with no error, the
# DOM must hold the heatmaps, and a screenshot is kept as a test artifact.
set -euo pipefail
qkv=$1 models=${QKV_MODELS_DIR:-$2} artifacts=$3
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "FAIL: chromium not installed (scripts/setup.sh installs it)"; exit 1; }
mkdir -p "$artifacts"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
report="$artifacts/attention-stories260K.html"
"$qkv" attention -m "$models/stories260K.gguf" -p "Once upon a time, there was a little girl named Lily." -n 8 \
  -o "$report" 2>/dev/null
flags=(--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
       --disable-sync --no-first-run --disable-extensions --user-data-dir="$tmp/profile")
timeout 120 "$browser" "${flags[@]}" --virtual-time-budget=5000 --dump-dom "file://$report" >"$tmp/dom.html" 2>"$tmp/log"
grep -q 'data-status="ready"' "$tmp/dom.html" || { echo "FAIL: the script did not finish"; tail -5 "$tmp/log"; exit 1; }
if grep -q 'data-error=' "$tmp/dom.html"; then
  echo "FAIL: script error: $(grep -o 'data-error="[^"]*"' "$tmp/dom.html")"; exit 1
fi
if grep -E 'Uncaught|SyntaxError|TypeError|ReferenceError' "$tmp/log"; then echo "FAIL: console errors"; exit 1; fi
canvases=$(grep -o '<canvas[^>]*class="heatmap' "$tmp/dom.html" | wc -l)
# the main heatmap, and 5 layers x (8 heads + the average) thumbnails
[ "$canvases" -eq 46 ] || { echo "FAIL: $canvases heatmap canvases, expected 46"; exit 1; }
grep -q 'id="title">layer 0, head 0<' "$tmp/dom.html" || { echo "FAIL: no heatmap title"; exit 1; }
timeout 120 "$browser" "${flags[@]}" --window-size=1300,1800 --screenshot="$artifacts/attention-stories260K.png" \
  "file://$report" >/dev/null 2>&1
[ -s "$artifacts/attention-stories260K.png" ] || { echo "FAIL: no screenshot"; exit 1; }
echo "ok: the report ran in $("$browser" --version 2>/dev/null | head -1); screenshot in $artifacts"
