"""shared/outbox.py's pure rules: which broker errors set a row aside, and text as
PostgreSQL and strict JSON take it."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    RecordTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from shared.outbox import refused_for_what_it_is, text_for_storage


@pytest.mark.parametrize("failure", [
    MessageSizeTooLargeError(), RecordTooLargeError(), InvalidTopicError(),
    TopicAuthorizationFailedError()])
def test_what_the_broker_refuses_for_the_event_itself_is_set_aside(failure):
    assert refused_for_what_it_is(failure)


@pytest.mark.parametrize("failure", [
    KafkaTimeoutError(), KafkaConnectionError(), ProducerClosed(), RequestTimedOutError(),
    NotLeaderForPartitionError(), OutOfOrderSequenceNumber(),
    # The producer's own permission, not the row's: setting rows aside would empty the outbox.
    ClusterAuthorizationFailedError(),
    # Also what a producer says when it never reached the broker: decided by asking it.
    UnknownTopicOrPartitionError()])
def test_the_clusters_troubles_keep_the_row(failure):
    assert not refused_for_what_it_is(failure)


def test_text_for_storage_replaces_nul_and_unpaired_surrogates_and_bounds_the_length():
    assert text_for_storage("a\x00b\ud800c", 100) == "a\N{REPLACEMENT CHARACTER}b?c"
    assert text_for_storage("信用" * 100, 3) == "信用信"
    assert text_for_storage("plain", 100) == "plain"
