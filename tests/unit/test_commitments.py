"""Public credit commitments (shared/commitments.py): what a commitment record must carry,
its states, and what a breach makes of it in disclosure and the grade."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.publisher.commitments import public_commitments
from services.registry import domain as registry
from shared import commitments, disclosure
from shared.contract import SubjectRef
from shared.identifiers import check_uscc
from tests.unit.factories import ENTERPRISE, PERSON, archived, uscc

ITEM = "industry.enterprise_commitment"
TODAY = date(2026, 11, 30)


def signed(**overrides: Any) -> dict[str, Any]:
    commitment: dict[str, Any] = {"kind": "enterprise", "text_version": "2026-01",
                                  "signer": {"name": "李明", "role": "法定代表人"},
                                  "term_until": "2028-12-31"}
    commitment.update(overrides)
    return {"commitment": commitment}


BREACH = {"on": "2026-11-20", "document_no": "珠科工贸〔2026〕9号", "summary": "未按承诺履约"}


def problems(attributes: dict[str, Any], item: str = ITEM,
             signed_on: date = date(2026, 6, 1)) -> set[tuple[str, str]]:
    from shared.catalogue import load_catalogue
    cat = load_catalogue()
    return {(f, c) for f, c, _ in commitments.submission_problems(cat, item, signed_on,
                                                                    attributes, TODAY)}


def test_a_well_formed_commitment_and_its_breach_pass():
    assert problems(signed()) == set()
    assert problems({**signed(), "breach": BREACH}) == set()


@pytest.mark.parametrize(("attributes", "expected"), [
    ({}, ("attributes.commitment", "required")),
    (signed(kind="moon"), ("attributes.commitment.kind", "unknown_kind")),
    (signed(kind="institution"), ("attributes.commitment.kind", "wrong_kind")),
    (signed(text_version="1999-01"), ("attributes.commitment.text_version",
                                      "unknown_text_version")),
    (signed(signer={"role": "法定代表人"}), ("attributes.commitment.signer.name", "required")),
    (signed(signer={"name": "李明", "role": " "}), ("attributes.commitment.signer.role",
                                                   "required")),
    (signed(term_until="2026-11-29"), ("attributes.commitment.term_until", "term_over")),
    (signed(term_until="2026-05-01"), ("attributes.commitment.term_until", "before_signing")),
    (signed(term_until="2040-01-01"), ("attributes.commitment.term_until", "term_too_long")),
    (signed(term_until="soon"), ("attributes.commitment.term_until", "date")),
    ({**signed(), "breach": {**BREACH, "on": "2026-12-01"}}, ("attributes.breach.on",
                                                              "future_date")),
    ({**signed(), "breach": {**BREACH, "on": "2026-01-01"}}, ("attributes.breach.on",
                                                              "before_signing")),
    ({**signed(), "breach": {"on": "2026-11-20"}}, ("attributes.breach.document_no",
                                                    "required")),
    ({**signed(), "breach": "yes"}, ("attributes.breach", "object")),
])
def test_each_fault_is_named(attributes, expected):
    assert expected in problems(attributes)


def test_a_breach_on_another_item_is_refused():
    assert ("attributes.breach", "not_a_commitment") in problems(
        {"breach": BREACH}, item="amr.abnormal_operation")


def test_a_breach_after_the_term_is_refused_and_the_term_may_be_over_for_it():
    breached = {**signed(term_until="2026-10-31"), "breach": {**BREACH, "on": "2026-11-01"}}
    assert problems(breached) == {("attributes.breach.on", "after_term")}
    assert problems({**signed(term_until="2026-10-31"),
                     "breach": {**BREACH, "on": "2026-10-01"}}) == set()


def test_revision_states():
    assert commitments.revision_problems(None, False, signed()) == []
    assert commitments.revision_problems(None, False, {**signed(), "breach": BREACH})[0][1] \
        == commitments.UNKNOWN_COMMITMENT
    assert commitments.revision_problems("kept", True, {**signed(), "breach": BREACH}) == []
    assert commitments.revision_problems("breached", True, {**signed(), "breach": BREACH}
                                         )[0][1] == commitments.ALREADY_BREACHED
    assert commitments.revision_problems("breached", True, signed())[0][:2] == (
        "attributes.breach", "required")
    assert commitments.state(signed()) == "kept"
    assert commitments.state({**signed(), "breach": BREACH}) == "breached"


def test_kept_shows_until_its_term_and_breached_is_general_negative_from_the_breach(catalogue):
    kept = disclosure.window(catalogue, ITEM, date(2026, 6, 1), signed())
    assert kept.public_until == date(2028, 12, 31) and kept.repair_from is None
    breached = disclosure.window(catalogue, ITEM, date(2026, 6, 1),
                                 {**signed(), "breach": BREACH})
    # Order 36, general: 3 to 12 months from the breach (2026-11-20).
    assert breached.rule == "ndrc-order-36"
    assert (breached.repair_from, breached.public_until) == (date(2027, 2, 20),
                                                             date(2027, 11, 20))


def test_a_persons_breach_is_erased_five_years_after_it(catalogue):
    item = "hrss.key_person_commitment"
    assert disclosure.purge_on(catalogue, "individual", item, date(2026, 6, 1),
                               signed(kind="key_person")) is None
    assert disclosure.purge_on(catalogue, "individual", item, date(2026, 6, 1),
                               {**signed(kind="key_person"), "breach": BREACH}
                               ) == date(2031, 11, 20)


def record(attributes: dict[str, Any], **overrides: Any):
    w = disclosure.window(registry_catalogue(), ITEM, date(2026, 6, 1), attributes)
    return archived(ITEM, record_id="CM-1", attributes=attributes,
                    public_until=w.public_until, repair_from=w.repair_from, **overrides)


def registry_catalogue():
    from shared.catalogue import load_catalogue
    return load_catalogue()


def test_a_breach_lowers_the_grade(catalogue):
    assert registry.grade(catalogue, ENTERPRISE, [record(signed())], TODAY).grade == "B"
    breached = registry.grade(catalogue, ENTERPRISE, [record({**signed(), "breach": BREACH})],
                              TODAY)
    assert breached.grade == "C"
    assert "违背企业守信公开承诺" in breached.explanation[0]


def test_the_profile_lists_text_and_state(catalogue):
    [kept] = public_commitments(catalogue, ENTERPRISE, [record(signed())], TODAY)
    assert kept["status"] == "kept" and kept["kind"] == "enterprise"
    assert kept["text"].startswith("本企业承诺") and kept["commitment_id"] == "CM-1"
    [broken] = public_commitments(catalogue, ENTERPRISE, [record({**signed(),
                                                                  "breach": BREACH})], TODAY)
    assert broken["status"] == "breached" and broken["breach"]["document_no"] == BREACH[
        "document_no"]
    assert broken["severity"] == "general" and "国办发〔2019〕35号" in broken["severity_basis"]
    # Past its term, withdrawn, or repaired: not shown.
    assert public_commitments(catalogue, ENTERPRISE, [record(signed())], date(2029, 1, 1)) == []
    assert public_commitments(catalogue, ENTERPRISE, [record(signed(), status="withdrawn")],
                              TODAY) == []


def test_a_minors_commitment_is_not_shown(catalogue):
    from tests.unit.factories import resident_id
    minor = SubjectRef(type="individual", id=resident_id(birth=date(2012, 1, 1)), name="小明")
    attrs = signed(kind="key_person")
    r = archived("hrss.key_person_commitment", attributes=attrs,
                 public_until=date(2028, 12, 31))
    assert public_commitments(catalogue, minor, [r], TODAY) == []
    assert len(public_commitments(catalogue, PERSON, [r], TODAY)) == 1


def test_government_bodies_are_subjects():
    body = uscc("11440400007000001")
    assert check_uscc(body, "government") == []
    assert check_uscc(uscc("13440400007000001"), "government") == []
    assert check_uscc(body, "institution")[0].code == "category"


def test_the_catalogue_names_a_platform_item_and_a_kind_per_seed_owner(catalogue):
    assert catalogue.platform_commitment_item() == "ndrc.conduct_commitment"
    owners = {i.commitment.kind: i.department
              for i in catalogue.commitment_items().values() if i.commitment}
    assert owners == {"enterprise": "industry", "key_person": "hrss",
                      "institution": "staffing", "social_org": "civil",
                      "government_service": "supervision", "conduct": "ndrc"}


def test_me_shows_when_a_persons_breach_is_erased(catalogue):
    from services.publisher import rights
    attrs = {**signed(kind="key_person"), "breach": BREACH}
    r = archived("hrss.key_person_commitment", attributes=attrs, public_until=date(2027, 1, 1))
    assert rights.purge_on(catalogue, "individual", r) == date(2031, 11, 20)
    kept = archived("hrss.key_person_commitment", attributes=signed(kind="key_person"))
    assert rights.purge_on(catalogue, "individual", kept) is None
