"""shared/topics.py: every topic carrying personal data keeps it no longer than it needs
(issue 7, item 4; docs/decisions.md, "Retention")."""

from __future__ import annotations

from shared.topics import AGGREGATES, CREDENTIALS, OBJECTIONS, OBJECTIONS_CLOSED, all_topics

# What may be kept longer: credentials (compacted, operators only) and counts per district.
LONG_LIVED = {CREDENTIALS.name, *(t.name for t in AGGREGATES)}

DAY_MS = 24 * 3600 * 1000


def test_every_topic_has_an_explicit_retention(catalogue):
    for topic in all_topics(catalogue):
        assert "retention.ms" in topic.config, topic.name
        assert "cleanup.policy" in topic.config, topic.name


def test_topics_with_personal_data_are_deleted_after_at_most_30_days(catalogue):
    for topic in all_topics(catalogue):
        if topic.name in LONG_LIVED:
            continue
        assert topic.config["cleanup.policy"] == "delete", topic.name
        assert 0 < int(topic.config["retention.ms"]) <= 30 * DAY_MS, topic.name


def test_objections_outlast_their_20_day_answer_period(catalogue):
    for topic in all_topics(catalogue):
        if (topic.name.startswith(OBJECTIONS.prefix + ".")
                and topic.name != OBJECTIONS_CLOSED.name):  # a department's, not the stats'

            assert int(topic.config["retention.ms"]) >= 20 * DAY_MS
        elif topic.name not in LONG_LIVED:
            assert int(topic.config["retention.ms"]) == 7 * DAY_MS, topic.name


def test_the_only_compacted_topic_names_no_person():
    """credit.credentials is kept for ever; a subject's party on it is a keyed hash
    (shared/credentials.py::subject_party), so no erasure needs a tombstone there."""
    assert CREDENTIALS.config == {"cleanup.policy": "compact", "retention.ms": "-1"}
    assert "party" in CREDENTIALS.payload.model_fields
