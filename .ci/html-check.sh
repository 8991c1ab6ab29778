#!/usr/bin/env bash
# The HTML memory report in a real browser. Headless Chromium opens two
# pages: the runner's page of the demo harness (--memory-html) and a sample
# run with timelines and address maps drawn; it takes a screenshot of each
# (target/html-check/*.png) and fails when a page's script recorded an error
# (window.onerror sets data-page-error on <html>) or never ran (no
# data-rendered). A page with a deliberate script error checks the check.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/html-check
mkdir -p "$out"
out="$(cd "$out" && pwd)"

browser=""
for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then
        browser="$candidate"
        break
    fi
done
if [ -z "$browser" ]; then
    echo "installing chromium (Debian package)"
    if [ "$(id -u)" = 0 ]; then
        sudo=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo"
    else
        echo "error: chromium is not installed, and installing it needs root or sudo: apt-get install chromium" >&2
        exit 1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >"$out/apt.log" 2>&1 ||
        { cat "$out/apt.log" >&2; exit 1; }
    browser=chromium
fi
"$browser" --version

# 1. The runner's page of the demo harness (some of its tests fail on purpose).
status=0
cargo run -q --example custom_harness -- --test-threads 2 --memory-html "$out/demo.html" \
    >"$out/demo.log" 2>&1 || status=$?
if [ "$status" != 101 ]; then
    echo "error: the demo harness ended with $status, expected 101 (failing tests):" >&2
    cat "$out/demo.log" >&2
    exit 1
fi

# 2. A sample run with its timelines and address maps.
MEMGUARD_HTML_SAMPLE="$out/sample.html" cargo test -q --lib html::tests::sample_page -- --ignored --exact

# 3. A page whose script fails: the check must catch it.
sed 's|</body>|<script>not_a_function();</script></body>|' "$out/demo.html" >"$out/broken.html"

# Opens page NAME, takes its screenshot, and prints what its <html> element
# says after the scripts ran; fails when the browser fails.
open_page() {
    local name="$1" page="$out/$1.html"
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=1400,2000 --screenshot="$out/$name.png" "file://$page" \
        >"$out/$name.screenshot.log" 2>&1 ||
        { echo "error: $browser could not take a screenshot of $page" >&2; cat "$out/$name.screenshot.log" >&2; return 1; }
    [ -s "$out/$name.png" ] || { echo "error: no screenshot of $page" >&2; return 1; }
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --dump-dom "file://$page" \
        >"$out/$name.dom.html" 2>"$out/$name.dom.log" ||
        { echo "error: $browser could not load $page" >&2; cat "$out/$name.dom.log" >&2; return 1; }
    grep -o '<html[^>]*>' "$out/$name.dom.html" | head -n 1
}

# Fails unless page NAME rendered without a script error and shows TESTS
# test sections.
check_page() {
    local name="$1" tests="$2" root
    root="$(open_page "$name")"
    case "$root" in
        *'data-page-error="'*)
            echo "error: $out/$name.html has a page error: $root" >&2
            return 1 ;;
        *'data-rendered="true"'*) ;;
        *)
            echo "error: $out/$name.html did not render (its script never ran): $root" >&2
            return 1 ;;
    esac
    case "$root" in
        *"data-tests=\"$tests\""*) ;;
        *) echo "error: $out/$name.html should show $tests tests: $root" >&2; return 1 ;;
    esac
    echo "ok: $name.html ($tests tests), screenshot $out/$name.png"
}

check_page demo 5
check_page sample 6
root="$(open_page broken)"
case "$root" in
    *'data-page-error="'*) echo "ok: a page error is caught ($root)" ;;
    *) echo "error: the script error of $out/broken.html went unnoticed: $root" >&2; exit 1 ;;
esac
