"""The bootstrap administrator's login against the real broker: a refused password is told
by the broker's refusal rather than by a timeout, and `ensure_kafka_admin` puts it right over
the broker listener (a broker whose storage was last formatted with another password)."""

from __future__ import annotations

import socket

import pytest

from deploy import secrets, stack
from deploy.credentials import admin
from deploy.kafka_admin import KafkaAdmin
from shared.settings import Settings

pytestmark = pytest.mark.db


def test_a_login_is_accepted_refused_or_unanswered(db_settings: Settings, kafka: None) -> None:
    assert admin(db_settings).login() == "accepted"
    wrong = KafkaAdmin(db_settings, db_settings.kafka_admin_username, "not-the-password")
    assert wrong.login(timeout=60) == "refused"
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        nobody = KafkaAdmin(db_settings, db_settings.kafka_admin_username, "any",
                            overrides={"bootstrap.servers":
                                       f"127.0.0.1:{unused.getsockname()[1]}"})
        assert nobody.login(timeout=1) == "unanswered"


def test_ensure_kafka_admin_restores_a_password_the_broker_does_not_hold(
        db_settings: Settings, kafka: None) -> None:
    broker = stack.broker_admin(db_settings)
    broker.upsert_user(db_settings.kafka_admin_username, secrets.new_password())
    try:
        assert admin(db_settings).login() == "refused"
        stack.ensure_kafka_admin(db_settings)
        assert admin(db_settings).login() == "accepted"
    finally:  # whatever happened above, the tests after this one need the administrator
        broker.upsert_user(db_settings.kafka_admin_username, secrets.admin_password(db_settings))
