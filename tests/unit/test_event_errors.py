"""An unreadable event's error text goes into dead letters and logs (shared/outbox.py's
`dead_letter`): it names the field and the rule, never the value, which may be a person's
identity number or name."""

from __future__ import annotations

import json

import pytest

from services.objection.contracts import AcceptedReading
from shared.contract import ObjectionDecision
from shared.messages import InboundMessage, event_type_of, read_event, read_event_as
from shared.topics import RECORDS_ACCEPTED

PERSON_ID = "440402198505171239"


def _accepted_with(decided_on: str) -> InboundMessage:
    event = {"specversion": "1.0", "id": "e-1", "source": RECORDS_ACCEPTED.writer,
             "type": RECORDS_ACCEPTED.event_type,
             "data": {"department": "hrss", "source_event_id": "s-1",
                      "accepted_at": "2026-12-01T00:00:00Z",
                      "submission": {"record_id": "W-1", "revision": 1, "action": "upsert",
                                     "subject": {"type": "individual", "id": PERSON_ID,
                                                 "name": "张伟"},
                                     "decided_on": decided_on}}}
    return InboundMessage(topic=RECORDS_ACCEPTED.name, partition=0, offset=0, key=None,
                          value=json.dumps(event).encode(), timestamp_ms=0)


@pytest.mark.parametrize("read", [lambda m: read_event(m, RECORDS_ACCEPTED),
                                  lambda m: read_event_as(m, RECORDS_ACCEPTED,
                                                          AcceptedReading)])
def test_an_unreadable_events_error_names_the_field_not_the_value(read) -> None:
    with pytest.raises(ValueError) as caught:
        read(_accepted_with(decided_on=PERSON_ID))
    text = str(caught.value)
    assert "decided_on" in text
    assert PERSON_ID not in text and "input_value" not in text


def test_a_contract_models_error_names_no_value_either() -> None:
    with pytest.raises(ValueError) as caught:
        ObjectionDecision.model_validate({"objection_id": "o-1", "decision": PERSON_ID,
                                          "reason": "r"})
    assert "decision" in str(caught.value) and PERSON_ID not in str(caught.value)


def test_a_message_that_is_not_json_is_not_quoted_either() -> None:
    broken = InboundMessage(topic="credit.objections.amr", partition=0, offset=0, key=None,
                            value=f'{{"type": "x", "id": "{PERSON_ID}"'.encode(),
                            timestamp_ms=0)
    with pytest.raises(ValueError) as caught:
        event_type_of(broken)
    assert PERSON_ID not in str(caught.value)
