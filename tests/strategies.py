"""Hypothesis strategies for what a department might put on its inbound topic: any bytes,
broken JSON, envelopes and data mutated field by field, with the strings and numbers that
have broken ingest before (NUL, unpaired surrogates, full-width and superscript digits, deep
nesting, revisions past an int). Shared by the database and integration fuzz tests."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

from hypothesis import strategies as st

from deploy.demo import DemoSubject, make_resident_id, make_uscc
from shared.contract import REVISION_MAX
from shared.topics import OBJECTION_DECIDED, RECORD_SUBMITTED
from tests.integration.helpers import record

DEPARTMENTS = ("tax", "amr", "court", "hrss", "customs", "civil")

# Characters that have broken, or could break, a step after the parser.
TRICKY = ["\x00", "\ud800", "\udfff", "²", "９", "Ａ", "\u200b", "\ufeff", "-", " ", ":",
          "\n", "\\", '"', "珠", "\U0001f600", "\x7f", "\x1b"]
text = st.text(alphabet=st.one_of(st.characters(), st.sampled_from(TRICKY)), max_size=24)
keys = st.text(alphabet=st.one_of(st.characters(), st.sampled_from(TRICKY)), max_size=8)
integers = st.one_of(st.integers(-(2**40), 2**40),
                     st.sampled_from([0, -1, 1, REVISION_MAX, REVISION_MAX + 1, 2**63,
                                      10**30, -(2**31) - 1]))
scalars = st.one_of(st.none(), st.booleans(), integers,
                    st.floats(allow_nan=False, allow_infinity=False), text)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


def nested(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


deep = st.builds(nested, st.integers(1, 400), scalars)
wide = st.integers(1, 3000).map(lambda n: {f"k{i}": i for i in range(n)})
anything = st.one_of(values, deep, wide, text)


@st.composite
def valid_data(draw: st.DrawFn) -> dict[str, Any]:
    """A record a department may send: upsert or withdraw, about a firm or a person."""
    rng = draw(st.randoms(use_true_random=False))
    person = draw(st.booleans())
    subject = (DemoSubject("individual", make_resident_id("440402", date(1980, 1, 1) + timedelta(
        days=rng.randrange(10_000)), rng.randrange(1000)), "测试人") if person
        else DemoSubject("enterprise", make_uscc("91", "440402", rng), "珠海市测试有限公司"))
    item = draw(st.sampled_from(["court.dishonest_debtor", "hrss.wage_arrears"] if person
                                else ["court.dishonest_debtor", "amr.admin_penalty",
                                      "tax.major_violation", "amr.legal_representative"]))
    if draw(st.booleans()):
        return record(subject, action="withdraw")
    data = record(subject, item)
    if item == "amr.legal_representative":
        person_id = make_resident_id("440403", date(1970, 3, 4), rng.randrange(1000))
        data["attributes"] = {"legal_representative": {"id": person_id, "name": "法人"}}
    return data


@st.composite
def mutated_data(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(valid_data())
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["field", "subject", "attributes", "extra", "delete",
                                      "identifier", "revision", "inject"]))
        if where == "inject":
            _inject(draw, data)
        elif where == "field":
            data[draw(st.sampled_from(sorted(data)))] = draw(anything)
        elif where == "subject" and isinstance(data.get("subject"), dict):
            data["subject"][draw(st.sampled_from(["type", "id", "name", "extra"]))] = draw(
                anything)
        elif where == "attributes":
            data["attributes"] = draw(anything)
        elif where == "extra":
            data[draw(keys)] = draw(anything)
        elif where == "delete" and data:
            del data[draw(st.sampled_from(sorted(data)))]
        elif where == "identifier" and isinstance(data.get("subject"), dict):
            identifier = str(data["subject"].get("id", ""))
            at = draw(st.integers(0, len(identifier)))
            data["subject"]["id"] = identifier[:at] + draw(st.sampled_from(TRICKY)) + \
                identifier[at + 1:]
        elif where == "revision":
            data["revision"] = draw(st.one_of(integers, scalars))
    return data


def _inject(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    """A tricky character inside one of the strings of `doc` or of its subject."""
    strings = [(doc, k) for k, v in doc.items() if isinstance(v, str)]
    if isinstance(doc.get("subject"), dict):
        strings += [(doc["subject"], k) for k, v in doc["subject"].items() if isinstance(v, str)]
    if strings:
        owner, name = draw(st.sampled_from(strings))
        at = draw(st.integers(0, len(owner[name])))
        owner[name] = owner[name][:at] + draw(st.sampled_from(TRICKY)) + owner[name][at:]


def envelope(department: str, data: Any, event_type: str = RECORD_SUBMITTED) -> dict[str, Any]:
    subject = data.get("subject") if isinstance(data, dict) else None
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": f"dept/{department}",
            "type": event_type,
            "subject": (f"{subject.get('type')}:{subject.get('id')}"
                        if isinstance(subject, dict) else None),
            "time": "2026-11-28T09:00:00+08:00", "datacontenttype": "application/json",
            "data": data}


@st.composite
def mutated_envelope(draw: st.DrawFn, department: str) -> dict[str, Any]:
    doc = envelope(department, draw(st.one_of(valid_data(), mutated_data())))
    for _ in range(draw(st.integers(1, 2))):
        name = draw(st.sampled_from([*sorted(doc), "ext"]))
        how = draw(st.sampled_from(["delete", "replace", "inject"]))
        if how == "delete" and name in doc:
            del doc[name]
        elif how == "inject":
            _inject(draw, doc)
        else:
            doc[name] = draw(anything)
    return doc


@st.composite
def decision(draw: st.DrawFn, department: str) -> dict[str, Any]:
    """An objection decision, upheld with a corrected record (valid or not): ingest answers
    the correction, not the decision."""
    corrected = draw(st.one_of(valid_data(), mutated_data()))
    return envelope(department, {"objection_id": str(uuid.uuid4()), "decision": "upheld",
                                 "reason": draw(text), "corrected": corrected},
                    OBJECTION_DECIDED)


def encode(doc: Any, ascii_only: bool) -> bytes:
    """JSON as a producer might write it: escaped, or raw UTF-8 (where an unpaired surrogate
    becomes bytes that are not UTF-8)."""
    return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def broken_json(draw: st.DrawFn, department: str) -> bytes:
    raw = encode(envelope(department, draw(valid_data())), draw(st.booleans()))
    at = draw(st.integers(0, len(raw) - 1))
    if draw(st.booleans()):
        return raw[:at]
    return raw[:at] + draw(st.binary(min_size=1, max_size=3)) + raw[at + 1:]


@st.composite
def inbound_value(draw: st.DrawFn, department: str) -> tuple[str, bytes]:
    """(family, message value) for one department's inbound topic."""
    family = draw(st.sampled_from(["bytes", "broken_json", "envelope", "data", "decision",
                                   "valid"]))
    if family == "bytes":
        return family, draw(st.binary(max_size=200))
    if family == "broken_json":
        return family, draw(broken_json(department))
    doc = {"envelope": lambda: draw(mutated_envelope(department)),
           "data": lambda: envelope(department, draw(mutated_data())),
           "decision": lambda: draw(decision(department)),
           "valid": lambda: envelope(department, draw(valid_data()))}[family]()
    return family, encode(doc, draw(st.booleans()))


message_keys = st.one_of(st.none(), st.binary(max_size=40),
                         st.sampled_from([b"enterprise:\x00", b"\x00", b"\xff\xfe",
                                          b"individual:\xef\xbc\x99"]))
