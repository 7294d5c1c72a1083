"""The front door's nginx configuration as nginx itself reads it (`nginx -t`, Debian's
nginx, installed by deploy/frontdoor.sh like promtool is by deploy/prometheus.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy import frontdoor
from shared.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.deploy


@pytest.fixture(scope="module")
def nginx() -> str | None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        subprocess.run(["bash", str(REPO_ROOT / "deploy" / "frontdoor.sh"), "install"],
                       check=False, capture_output=True, timeout=900)
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                     else None)


def _check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO_ROOT / "deploy" / "frontdoor.sh"), "check"],
                          env={**os.environ, "XINYONG_FRONTDOOR_DIR": str(folder)},
                          capture_output=True, text=True, timeout=60)


def test_the_local_configuration_passes_nginx_t(nginx: str | None, tmp_path: Path) -> None:
    if nginx is None:
        pytest.skip("nginx could not be installed (Debian's nginx-light): only the Python "
                    "checks of the configuration ran (tests/unit/test_operations.py)")
    door = frontdoor.FrontDoor(Settings(), tmp_path)
    door.write({"publisher": 2, "ingest": 2, "registry": 2, "objection": 2})
    done = _check(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The check can fail: a broken configuration is refused.
    door.config.write_text(door.config.read_text().replace("proxy_pass", "proxy_passs", 1))
    assert _check(tmp_path).returncode != 0
