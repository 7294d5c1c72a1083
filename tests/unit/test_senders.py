"""The file sender's spool (services/publisher/senders.py) holds each message whole, a
contact and a name with it: a day's file is deleted `keep_days` on, by the first message of
a later day."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from services.publisher.senders import FileSender, Message
from shared import clock


def test_the_first_message_of_a_day_deletes_the_days_past_keeping(tmp_path: Path) -> None:
    today = clock.today()
    old = tmp_path / f"{(today - timedelta(days=31)).isoformat()}.jsonl"
    kept = tmp_path / f"{(today - timedelta(days=30)).isoformat()}.jsonl"
    other = tmp_path / "notes.txt"  # not the spool's
    for f in (old, kept, other):
        f.write_text('{"to": "13800000000"}\n')
    sender = FileSender(tmp_path, keep_days=30)
    message = Message(notification_id="n-1", contact="13800001111", text="拟列入名单告知")
    assert asyncio.run(sender.send(message)) == "sms"
    assert not old.exists() and kept.exists() and other.exists()
    [line] = (tmp_path / f"{today.isoformat()}.jsonl").read_text().splitlines()
    assert json.loads(line)["to"] == "13800001111"
    old.write_text("{}\n")  # the same day again: no second look at the folder
    asyncio.run(sender.send(message))
    assert old.exists()
