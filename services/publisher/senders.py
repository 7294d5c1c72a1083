"""How a notification reaches a subject: a sender adapter per deployment (setting
`notification_sender`). Locally and in tests, the file sender: each message is one JSON line
in a spool folder (what an SMS or e-mail gateway would be handed), so that nothing leaves
the machine. A production gateway is another adapter with the same `send`."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from services.publisher import rights
from shared import clock
from shared.settings import Settings


class DeliveryFailed(Exception):
    """The message could not be handed over (a contact with no channel, a gateway's no)."""


@dataclass(frozen=True)
class Message:
    notification_id: str  # the gateway's idempotency key: a resend after a crash is one SMS
    contact: str
    text: str


class Sender(Protocol):
    async def send(self, message: Message) -> str:
        """Hand the message over; returns the channel used (`sms`, `email`); raises
        DeliveryFailed."""


class FileSender:
    """Appends each message to `<folder>/<date>.jsonl` (China Standard Time); the first
    message of a day deletes the days older than `keep_days`."""

    def __init__(self, folder: Path, keep_days: int = 30) -> None:
        self.folder = folder
        self.keep_days = keep_days

    async def send(self, message: Message) -> str:
        channel = rights.channel_of(message.contact)
        if channel is None:
            raise DeliveryFailed("the contact is neither a phone number nor an e-mail address")
        line = json.dumps({"notification_id": message.notification_id, "channel": channel,
                           "to": message.contact, "text": message.text,
                           "at": clock.now().isoformat()}, ensure_ascii=False)
        await asyncio.to_thread(self._append, line)
        return channel

    def _append(self, line: str) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{clock.today().isoformat()}.jsonl"
            new_day = not path.exists()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as exc:
            raise DeliveryFailed(f"spool folder: {exc}") from exc
        if new_day:
            self._forget_old_days()

    def _forget_old_days(self) -> None:
        oldest = (clock.today() - timedelta(days=self.keep_days)).isoformat()
        for day in self.folder.glob("????-??-??.jsonl"):
            if day.stem < oldest:  # ISO dates order as text
                day.unlink(missing_ok=True)


def sender_of(settings: Settings) -> Sender:
    if settings.notification_sender == "file":
        return FileSender(settings.notification_spool_dir or settings.home / "notifications",
                          settings.notification_spool_days)
    raise ValueError(f"unknown notification sender {settings.notification_sender!r}")
