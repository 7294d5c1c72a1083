"""Generated secrets of a local stack, kept under `<home>/secrets/` readable by its owner
only: the broker's and its administrator's passwords, each service's Kafka password, the key
that hashes subjects on credit.credentials. Made once, on first use."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from shared.settings import Settings


def secret(settings: Settings, name: str) -> str:
    folder = settings.secrets_dir
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / name
    if not path.exists():
        _write_private(path, new_password())
    return path.read_text().strip()


def new_password() -> str:
    return secrets.token_urlsafe(24)


def _write_private(path: Path, value: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(tmp, path)


def admin_password(settings: Settings) -> str:
    return settings.kafka_admin_password or secret(settings, "kafka-admin.password")


def service_password(settings: Settings, service: str) -> str:
    return secret(settings, f"kafka-{settings.topic_namespace}svc.{service}.password")


def forget_namespace(settings: Settings) -> None:
    """Remove the secrets of a test or benchmark namespace."""
    if settings.topic_namespace:
        for path in settings.secrets_dir.glob(f"*{settings.topic_namespace}*"):
            path.unlink(missing_ok=True)


def subject_key_secret(settings: Settings) -> str:
    return settings.subject_key_secret or secret(settings, "subject-key.secret")
