#!/usr/bin/env bash
# The browser the web demo's test drives (tests/test_tools/test_demo_browser.py): Debian's chromium at
# /usr/bin/chromium and a CJK font for the page's Chinese. Installs them with apt-get when missing
# (as root, or through sudo); does nothing when both are there.
set -euo pipefail
if [ -x /usr/bin/chromium ] && fc-list :lang=zh 2>/dev/null | grep -q .; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install_test_browser.sh: no apt-get here; install chromium (as /usr/bin/chromium) and a CJK font" \
         "(e.g. Noto Sans CJK) with this system's package manager" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then
        SUDO="sudo"
    else
        echo "install_test_browser.sh: needs root to run: apt-get install -y chromium fonts-noto-cjk" >&2
        exit 1
    fi
fi
echo "installing chromium and fonts-noto-cjk for the web demo's browser test (apt-get)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
test -x /usr/bin/chromium || { echo "install_test_browser.sh: /usr/bin/chromium still missing" >&2; exit 1; }
