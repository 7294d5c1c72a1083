#!/usr/bin/env bash
# The browser the public site's browser tests drive: Debian's Chromium and a CJK font
# (pages are zh-CN; without one every character renders as a box in the screenshots and
# text metrics differ). Playwright drives this system browser, never a build of its own
# (no download at test time; see tests/browser/conftest.py).
#
#   deploy/browser.sh install|path
#
# apt runs only when something is missing, so a second call costs a few milliseconds.
set -euo pipefail

log() { printf 'browser: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

chromium_bin() {
    command -v chromium || { [[ -x /usr/bin/chromium ]] && echo /usr/bin/chromium; }
}

# Either CJK family Debian packages does (the credit report's renderer may have brought
# fonts-noto-cjk already).
have_cjk_font() {
    local pkg
    for pkg in fonts-wqy-zenhei fonts-noto-cjk; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' &&
            return 0
    done
    return 1
}

cmd_install() {
    local want=()
    chromium_bin >/dev/null || want+=(chromium)
    have_cjk_font || want+=(fonts-wqy-zenhei)
    if [[ ${#want[@]} -eq 0 ]]; then
        return
    fi
    log "installing ${want[*]} from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null ||
        die "could not install ${want[*]}"
    chromium_bin >/dev/null || die "chromium installed but not found"
}

case ${1:-install} in
    install) cmd_install ;;
    path) cmd_install; chromium_bin ;;
    *) die "usage: $0 install|path" ;;
esac
