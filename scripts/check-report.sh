#!/usr/bin/env bash
# Check a routerforge run report: every asset resolves, nothing loads from the network, and headless Chromium
# renders it without console errors; saves a screenshot of the first screen.
#
#   scripts/check-report.sh runs/NAME/report/index.html [screenshot.png]
#
# Exit 0: fine. 1: a problem (printed). 2: usage, or no Chromium (Debian: apt-get install -y chromium).
# Not part of CI: it needs a browser.
set -euo pipefail

html=${1:-}
if [[ -z "$html" || ! -f "$html" ]]; then
    echo "usage: $0 runs/NAME/report/index.html [screenshot.png]" >&2
    exit 2
fi
shot=${2:-$(dirname "$html")/screenshot.png}
python=$(command -v python3 || command -v python)

# 1. Static check: every src/href/url() is a data: URI, a #fragment or an existing local file; no http(s) or //.
"$python" - "$html" <<'PY'
import re, sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

page = Path(sys.argv[1])
problems = []

def check(ref: str, where: str) -> None:
    ref = ref.strip()
    if not ref or ref.startswith(("data:", "#")):
        return
    if ref.startswith("//") or urlparse(ref).scheme in ("http", "https", "ftp", "ws", "wss"):
        problems.append(f"external reference in {where}: {ref[:120]}")
        return
    if urlparse(ref).scheme not in ("", "file"):
        problems.append(f"unexpected reference in {where}: {ref[:120]}")
        return
    target = page.parent / unquote(urlparse(ref).path)
    if not target.exists():
        problems.append(f"missing asset in {where}: {ref}")

class Refs(HTMLParser):
    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is not None and name in ("src", "href", "srcset", "poster", "data", "action"):
                check(value.split()[0] if name == "srcset" else value, f"<{tag} {name}>")
            if name == "style" and value:
                for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", value):
                    check(url, f"<{tag} style>")

text = page.read_text(encoding="utf-8")
Refs().feed(text)
for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", "".join(re.findall(r"<style[^>]*>(.*?)</style>", text, re.S))):
    check(url, "<style>")
for line in problems:
    print(line, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
echo "assets: ok (no missing file, no network reference)"

# 2. Render in headless Chromium with the network mapped to nowhere: any console message is a failure
#    (the report has no script; a failed load also logs one).
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$browser" ]]; then
    echo "no Chromium found: install it (Debian: apt-get install -y chromium) to render and screenshot" >&2
    exit 2
fi
profile=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$profile" "$log"' EXIT
url="file://$(cd "$(dirname "$html")" && pwd)/$(basename "$html")"
mkdir -p "$(dirname "$shot")"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$profile" --host-resolver-rules="MAP * ~NOTFOUND" \
    --enable-logging=stderr --v=0 --window-size=1280,1600 \
    --screenshot="$shot" "$url" >"$log" 2>&1 || { cat "$log" >&2; echo "chromium failed" >&2; exit 1; }
if grep -E "CONSOLE|Uncaught|Failed to load resource|net::ERR_" "$log" >&2; then
    echo "console errors while rendering $html (above)" >&2
    exit 1
fi
if [[ ! -s "$shot" ]]; then
    echo "no screenshot written" >&2
    exit 1
fi
echo "rendered: no console errors; screenshot: $shot"
