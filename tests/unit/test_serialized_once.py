"""Events assembled around JSON already serialized (serialize once: the bytes stored are the
bytes sent) say exactly what the models would have said; and the producers' partitioner
picks the partitions the Java client (and aiokafka's own) would."""

from __future__ import annotations

import json
import random
import re
import uuid
from typing import Any

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registry.handlers import snapshot_json
from shared.contract import Grade, RecordFeedback, RelatedSubject, SubjectChanged
from shared.envelope import CloudEvent, data_json, encode_event, encode_event_json
from shared.kafka import murmur2, partition_of
from tests import strategies
from tests.unit.factories import ENTERPRISE, archived, resident_id


def test_a_snapshot_around_stored_records_is_the_models_own_json() -> None:
    records = [archived(), archived("amr.admin_penalty", department="amr", record_id="A-2",
                                    attributes={"金额": 1200, "nested": {"a": [1, None]}})]
    related = [RelatedSubject(type="individual", id=resident_id(), name="张三",
                              role="legal_representative")]
    grade = Grade(grade="D", explanation=["严重失信记录：x"])
    model = SubjectChanged(subject=ENTERPRISE, version=7, records=records,
                           related_subjects=related, grade=grade)
    built = snapshot_json(ENTERPRISE, 7, [r.model_dump_json() for r in records], related,
                          grade)
    assert built == model.model_dump_json().encode()
    empty = SubjectChanged(subject=ENTERPRISE, version=1, records=[], grade=grade)
    assert snapshot_json(ENTERPRISE, 1, [], [], grade) == empty.model_dump_json().encode()


def test_an_event_around_serialized_data_is_the_same_event_and_gives_its_data_back() -> None:
    data = RecordFeedback(event_id="e\"1", record_id="R-1", revision=2, status="accepted")
    _, by_model = encode_event("t.v1", "xinyong/ingest", "enterprise:1", data, "id-1")
    _, by_bytes = encode_event_json("t.v1", "xinyong/ingest", "enterprise:1",
                                    data.model_dump_json().encode(), "id-1")
    first, second = json.loads(by_model), json.loads(by_bytes)
    assert first.pop("time") and second.pop("time")
    assert first == second
    assert data_json(by_bytes) == data.model_dump_json().encode()
    # A subject that spells the mark out is escaped, so the mark is found where data begins.
    _, tricky = encode_event_json("t.v1", "s", ',"datacontenttype":"application/json","data":',
                                  b'{"a":1}', "id-2")
    assert data_json(tricky) == b'{"a":1}'
    assert CloudEvent.model_validate_json(tricky).data == {"a": 1}
    # An event written otherwise (spaces, another order) is not cut up.
    assert data_json(json.dumps({"data": {"a": 1}, "datacontenttype": "application/json"}
                                ).encode()) is None


def test_the_partitioner_agrees_with_the_java_clients_murmur2() -> None:
    rng = random.Random(9)
    for length in range(70):
        for _ in range(30):
            key = bytes(rng.getrandbits(8) for _ in range(length))
            assert murmur2.__wrapped__(key) == aiokafka_murmur2(key)
    # Known values of the Java client (org.apache.kafka.common.utils.UtilsTest).
    assert murmur2(b"21") & 0xFFFFFFFF == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") & 0xFFFFFFFF == (-790332482) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") & 0xFFFFFFFF == (-985981536) & 0xFFFFFFFF
    key = b"enterprise:91440400MA4W8KXX0X"
    assert partition_of(key, list(range(6)), []) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % 6


def test_caused_ids_are_uuid5_of_their_cause() -> None:
    from shared.messages import _CAUSED_NS, caused_id
    for cause in [("xinyong/ingest", "feedback", "topic-id|3|17"), ("a",), ("珠海", 1, None)]:
        assert caused_id(*cause) == str(uuid.uuid5(_CAUSED_NS, "|".join(map(str, cause))))


@settings(max_examples=300, deadline=None)
@given(namespace=st.uuids(), name=st.text())
def test_name_based_ids_are_the_standard_librarys_uuid5(namespace: uuid.UUID,
                                                         name: str) -> None:
    """Notice, entry and event ids are promised stable (CONTRACT.md): the fast builder must
    give what `uuid.uuid5` gave for every namespace and name."""
    from shared.identifiers import uuid5_text
    assert uuid5_text(namespace, name) == str(uuid.uuid5(namespace, name))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_ingest_reads_what_the_standard_library_reads(data: st.DataObject) -> None:
    """orjson first, the standard library for what it refuses: every message reads as the
    standard library alone reads it (the same envelope, the same errors)."""
    import json

    import services.ingest.domain as ingest

    _, raw = data.draw(strategies.inbound_value("court"))
    extra = data.draw(st.sampled_from([b"", b" ", b"\xef\xbb\xbf"]))
    raw = extra + raw if data.draw(st.booleans()) else raw
    with_orjson = ingest.parse_message(raw)
    class Refusing:  # an orjson that refuses everything: the standard library reads it all
        JSONDecodeError = json.JSONDecodeError

        @staticmethod
        def loads(raw: bytes) -> Any:
            raise json.JSONDecodeError("refused", "", 0)

    original = ingest.orjson  # type: ignore[attr-defined]
    try:
        ingest.orjson = Refusing  # type: ignore[attr-defined, assignment]
        alone = ingest.parse_message(raw)
    finally:
        ingest.orjson = original  # type: ignore[attr-defined]
    assert repr(with_orjson) == repr(alone)


def test_a_number_past_64_bits_is_read_as_the_integer_it_is() -> None:
    from services.ingest.domain import read_envelope

    event, _ = read_envelope(b'{"specversion":"1.0","id":"x","source":"dept/court",'
                             b'"type":"t","data":{"revision":18446744073709551616}}')
    assert event is not None and event.data == {"revision": 2**64}


@pytest.mark.parametrize(("raw", "long"), [
    (b'{"n":12345678901234567890}', True),
    (b'{"n":1234567890123456789}', False),  # 19 digits: orjson reads it
    (b'{"id":"91440400MA4UXXXX1X","x":"0000000000000000000a0"}', False),
    (b'{"s":"\xe7\x8f\xa0 00000000000000000000"}', True),
    (b"", False),
])
def test_a_run_of_20_digits_is_found_wherever_it_is(raw: bytes, long: bool) -> None:
    from services.ingest.domain import has_long_number

    assert has_long_number(raw) is long
    assert has_long_number(raw) is bool(re.search(rb"[0-9]{20}", raw))


@given(st.binary(max_size=80) | st.text(alphabet="0123456789a\"珠", max_size=80).map(str.encode))
def test_the_long_number_check_is_the_regex_it_replaced(raw: bytes) -> None:
    from services.ingest.domain import has_long_number

    assert has_long_number(raw) is bool(re.search(rb"[0-9]{20}", raw))
