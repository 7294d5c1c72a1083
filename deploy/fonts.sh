#!/usr/bin/env bash
# The CJK font the credit reports are rendered with (services/publisher/report_render.py:
# WeasyPrint finds it through fontconfig): Debian's fonts-wqy-zenhei, installed only when
# missing. deploy/postgres.sh runs it on start, so `./xinyong up` and `./xinyong test` (and
# CI) have it; the Dockerfile installs the same package.
set -euo pipefail

if fc-list 2>/dev/null | grep -qi 'WenQuanYi Zen Hei'; then
    exit 0
fi
printf 'fonts: installing fonts-wqy-zenhei from apt\n' >&2
export DEBIAN_FRONTEND=noninteractive
# Another apt run (another checkout's) may hold the lock for a while: wait for it.
apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends \
    fonts-wqy-zenhei fontconfig >/dev/null 2>&1 || {
    apt-get update -qq -o DPkg::Lock::Timeout=300
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends \
        fonts-wqy-zenhei fontconfig >/dev/null
}
fc-list | grep -qi 'WenQuanYi Zen Hei' || { printf 'fonts: no CJK font after install\n' >&2; exit 1; }
