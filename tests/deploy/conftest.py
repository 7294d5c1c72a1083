"""Offline checks of the deployment files (deploy/): alert rules and dashboards, systemd
units, Kubernetes manifests, docker-compose.yml. No broker, no database; the external
checkers (promtool, systemd-analyze) run when the machine has them, and each test says so
when it could not."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from shared.settings import REPO_ROOT


@pytest.fixture(scope="session")
def promtool() -> str | None:
    """promtool from Debian's prometheus package, installed by deploy/prometheus.sh like
    PostgreSQL and Kafka are by theirs; None when it cannot be installed here."""
    if shutil.which("promtool") is None:
        subprocess.run(["bash", str(REPO_ROOT / "deploy" / "prometheus.sh"), "install"],
                       check=False, capture_output=True, timeout=900)
    return shutil.which("promtool")
