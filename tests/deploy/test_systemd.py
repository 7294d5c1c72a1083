"""The systemd units of deploy/systemd pass `systemd-analyze verify` (Debian's systemd
package), and say what the runbook promises: restarts on failure, secrets from environment
files, the sweep every minute."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT
from shared.topics import SERVICES

pytestmark = pytest.mark.deploy

UNITS = REPO_ROOT / "deploy" / "systemd"
VENV_BIN = Path(sys.executable).parent


def _unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text(encoding="utf-8"))
    return parser


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not available (Debian's systemd package): the units "
                    "were only parsed (test_units_say_what_the_runbook_promises)")
    # verify also checks that every ExecStart program exists: the install paths of the
    # runbook are pointed at this checkout's virtualenv, nothing else changes.
    for path in [*UNITS.glob("*.service"), *UNITS.glob("*.timer"), *UNITS.glob("*.target")]:
        text = path.read_text(encoding="utf-8").replace("/opt/xinyong/venv/bin/", f"{VENV_BIN}/")
        if "/usr/bin/java" in text and not Path("/usr/bin/java").exists():
            java = shutil.which("java")
            assert java, "java (deploy/kafka.sh installs it) is needed to verify the Kafka unit"
            text = text.replace("/usr/bin/java", java)
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    for service in SERVICES:
        (tmp_path / f"xinyong@{service}.service").symlink_to(tmp_path / "xinyong@.service")
    units = [str(tmp_path / n) for n in (
        *(f"xinyong@{s}.service" for s in SERVICES), "xinyong-kafka.service",
        "xinyong-credentials-sweep.service", "xinyong-credentials-sweep.timer",
        "xinyong-stats-windows.service", "xinyong.target")]
    done = subprocess.run([analyze, "verify", *units], capture_output=True, text=True,
                          timeout=120)
    # An unknown key or a bad value is only a warning to systemd: any word about our
    # files fails the test.
    ours = [line for line in (done.stdout + done.stderr).splitlines()
            if str(tmp_path) in line or "xinyong" in line]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr


def test_units_say_what_the_runbook_promises() -> None:
    service = _unit("xinyong@.service")
    assert service["Service"]["Restart"] == "on-failure"
    assert service["Service"]["ExecStart"] == "/opt/xinyong/venv/bin/python -m services.%i"
    assert service["Service"]["User"] == "xinyong"
    # The instance's secrets come from a file of its own, never from the unit.
    assert "/etc/xinyong/%i.env" in service["Service"]["EnvironmentFile"]
    assert "PASSWORD" not in (UNITS / "xinyong@.service").read_text()
    kafka = _unit("xinyong-kafka.service")
    assert kafka["Service"]["Restart"] == "on-failure"
    assert "kafka.Kafka /etc/xinyong/kafka/server.properties" in kafka["Service"]["ExecStart"]
    sweep, timer = _unit("xinyong-credentials-sweep.service"), _unit(
        "xinyong-credentials-sweep.timer")
    assert sweep["Service"]["ExecStart"].endswith("xinyong credentials sweep")
    assert timer["Timer"]["OnUnitActiveSec"] == "60s"
    target = (UNITS / "xinyong.target").read_text()
    for service_name in SERVICES:
        assert f"xinyong@{service_name}.service" in target
    assert "xinyong-stats-windows.service" in target
    windows = _unit("xinyong-stats-windows.service")
    assert windows["Service"]["ExecStart"].endswith("-m services.stats.windows")
    assert windows["Service"]["Restart"] == "on-failure"
    # The example environment files name only real settings.
    from shared.settings import Settings
    fields = {f"XINYONG_{n.upper()}" for n in Settings.model_fields}
    for example in UNITS.glob("*.env.example"):
        names = {line.split("=", 1)[0] for line in example.read_text().splitlines()
                 if line and not line.startswith("#")}
        assert names <= fields, f"{example.name}: not settings: {names - fields}"


def test_the_kafka_unit_runs_the_jvm_as_the_local_broker_does() -> None:
    """The compiler and collector measured for the broker (docs/performance.md, "Kafka's
    share") are the same in production as in deploy/kafka.sh's default."""
    script = (REPO_ROOT / "deploy" / "kafka.sh").read_text(encoding="utf-8")
    match = re.search(r"^jvm_opts=\$\{XINYONG_KAFKA_JVM_OPTS:-(.+)\}$", script, re.MULTILINE)
    assert match, "deploy/kafka.sh sets its default JVM flags in jvm_opts"
    exec_start = " ".join(_unit("xinyong-kafka.service")["Service"]["ExecStart"]
                          .replace("\\\n", " ").split())
    unit_flags = re.search(r" -server (.*?) -D", exec_start)
    assert unit_flags and unit_flags.group(1) == match.group(1), exec_start
