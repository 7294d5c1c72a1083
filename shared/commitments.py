"""Public credit commitments (守信公开承诺, the seed work plan; 信用承诺: 国办发〔2019〕35号): what
a commitment record carries, its state, and what a breach makes of it. Pure functions, used
by ingest (what a submission must carry), the registry (window and grade), the publisher
(the profile's `commitments`) and disclosure (shared/disclosure.py).

A department submits a signed commitment as a record of a catalogue item of polarity
`commitment` (`record_id` = the commitment id):

    "attributes": {"commitment": {"kind": "enterprise", "text_version": "2026-01",
                                  "signer": {"name": "...", "role": "法定代表人"},
                                  "term_until": "2028-12-31"}}

signed on `decided_on`. A breach is a later revision of the same record that adds

    "breach": {"on": "2027-03-01", "document_no": "...", "summary": "..."}

and makes the commitment `breached`: negative information of the item's `breach_severity`,
shown, graded, repaired and erased like any negative record decided on the breach date.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from shared.catalogue import REPAIR_KIND, Catalogue, CatalogueItem, Polarity, Severity

CommitmentState = Literal["kept", "breached"]
COMMITMENT_RULE = "commitment-term"
Problem = tuple[str, str, str]  # field, code, message

UNKNOWN_COMMITMENT = "unknown_commitment"
ALREADY_BREACHED = "already_breached"


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def breach_of(attributes: dict[str, Any]) -> dict[str, Any] | None:
    breach = attributes.get("breach")
    return breach if isinstance(breach, dict) else None


def breached_on(attributes: dict[str, Any]) -> date | None:
    breach = breach_of(attributes)
    return _date(breach.get("on")) if breach is not None else None


def state(attributes: dict[str, Any]) -> CommitmentState:
    """A commitment is `breached` once a revision states its breach, `kept` before."""
    return "breached" if breach_of(attributes) is not None else "kept"


def term_until(attributes: dict[str, Any]) -> date | None:
    commitment = attributes.get("commitment")
    return _date(commitment.get("term_until")) if isinstance(commitment, dict) else None


def standing(item: CatalogueItem, attributes: dict[str, Any]
             ) -> tuple[Polarity, Severity | None]:
    """The polarity and severity a record counts with: its item's, except that a breached
    commitment is negative information of the item's breach severity."""
    if item.commitment is None:
        return item.polarity, item.severity
    if state(attributes) == "breached":
        return "negative", item.commitment.breach_severity
    return "commitment", None


def decided_for_disclosure(item: CatalogueItem, decided_on: date,
                           attributes: dict[str, Any]) -> date:
    """The day a record's disclosure period counts from: a breach's own date for a breached
    commitment (the failing act), the decision date otherwise."""
    if item.commitment is not None:
        return breached_on(attributes) or decided_on
    return decided_on


def text_of(item: CatalogueItem, attributes: dict[str, Any]) -> tuple[str, str] | None:
    """(version, standard text) a commitment record was signed on."""
    commitment = attributes.get("commitment")
    if item.commitment is None or not isinstance(commitment, dict):
        return None
    version = str(commitment.get("text_version"))
    text = item.commitment.texts.get(version)
    return (version, text.text) if text is not None else None


# --- what a submission must carry --------------------------------------------------------


def submission_problems(catalogue: Catalogue, item_name: str, decided_on: date | None,
                        attributes: dict[str, Any], today: date) -> list[Problem]:
    """What a commitment record's attributes lack or get wrong: kind and text version of the
    item, a signer with a role, a term that is not over (nor longer than the catalogue
    allows), and a well-formed breach. Nothing for other items (a breach there is refused)."""
    item = catalogue.items[item_name]
    if item.commitment is None:
        if "breach" in attributes:
            return [("attributes.breach", "not_a_commitment",
                     f"{item_name} is not a commitment item: it has no breach")]
        return []
    spec = item.commitment
    raw = attributes.get("commitment")
    if not isinstance(raw, dict):
        return [("attributes.commitment", "required",
                 "a commitment record carries kind, text_version, signer and term_until")]
    problems: list[Problem] = []
    kind = raw.get("kind")
    known_kinds = {i.commitment.kind for i in catalogue.commitment_items().values()
                   if i.commitment is not None}
    if kind not in known_kinds:
        problems.append(("attributes.commitment.kind", "unknown_kind",
                         f"one of {', '.join(sorted(known_kinds))}"))
    elif kind != spec.kind:
        problems.append(("attributes.commitment.kind", "wrong_kind",
                         f"{item_name} records commitments of kind {spec.kind}"))
    version = raw.get("text_version")
    text = spec.texts.get(str(version)) if isinstance(version, str) else None
    if text is None:
        problems.append(("attributes.commitment.text_version", "unknown_text_version",
                         f"one of {', '.join(spec.texts)}"))
    elif decided_on is not None and decided_on < text.effective_from:
        problems.append(("attributes.commitment.text_version", "text_not_in_force",
                         f"text {version} is in force from {text.effective_from}"))
    signer = raw.get("signer")
    for part in ("name", "role"):
        value = signer.get(part) if isinstance(signer, dict) else None
        if not isinstance(value, str) or not value.strip():
            problems.append((f"attributes.commitment.signer.{part}", "required",
                             f"the signer's {part} is required"))
        elif len(value) > 100:
            problems.append((f"attributes.commitment.signer.{part}", "too_long",
                             "at most 100 characters"))
    until = _date(raw.get("term_until"))
    breach = breach_of(attributes)
    if until is None:
        problems.append(("attributes.commitment.term_until", "date", "a date as YYYY-MM-DD"))
    elif decided_on is not None and until < decided_on:
        problems.append(("attributes.commitment.term_until", "before_signing",
                         f"{until} is before the signing ({decided_on})"))
    elif breach is None and until < today:
        problems.append(("attributes.commitment.term_until", "term_over",
                         f"the term ended on {until}: a commitment is signed for a term "
                         "still running"))
    elif decided_on is not None and until > _add_months(decided_on,
                                                        catalogue.commitments.max_term_months):
        problems.append(("attributes.commitment.term_until", "term_too_long",
                         f"at most {catalogue.commitments.max_term_months} months"))
    if "breach" in attributes:
        problems += _breach_problems(attributes["breach"], decided_on, until, today)
    return problems


def _breach_problems(raw: Any, signed_on: date | None, until: date | None,
                     today: date) -> list[Problem]:
    if not isinstance(raw, dict):
        return [("attributes.breach", "object", "on, document_no and summary")]
    problems: list[Problem] = []
    on = _date(raw.get("on"))
    if on is None:
        problems.append(("attributes.breach.on", "date", "a date as YYYY-MM-DD"))
    elif signed_on is not None and on < signed_on:
        problems.append(("attributes.breach.on", "before_signing",
                         f"{on} is before the signing ({signed_on})"))
    elif until is not None and on > until:
        problems.append(("attributes.breach.on", "after_term", f"the term ended on {until}"))
    elif on > today:
        problems.append(("attributes.breach.on", "future_date", f"{on} is after {today}"))
    for part, limit in (("document_no", 200), ("summary", 4000)):
        value = raw.get(part)
        if not isinstance(value, str) or not value.strip():
            problems.append((f"attributes.breach.{part}", "required",
                             f"a breach states its {part}"))
        elif len(value) > limit:
            problems.append((f"attributes.breach.{part}", "too_long", f"at most {limit}"))
    return problems


def revision_problems(current: CommitmentState | None, known: bool,
                      attributes: dict[str, Any]) -> list[Problem]:
    """A revision against the commitment as ingest holds it: a breach needs a commitment
    signed before (`known`: an earlier revision, not withdrawn) and not already breached; a
    breached commitment is not made kept again by a later revision (only withdrawn)."""
    breach = "breach" in attributes
    if breach and not known:
        return [("attributes.breach", UNKNOWN_COMMITMENT,
                 "a breach is a later revision of a signed commitment; this record_id has "
                 "none")]
    if current == "breached" and breach:
        return [("attributes.breach", ALREADY_BREACHED, "this commitment is already breached")]
    if current == "breached":
        return [("attributes.breach", "required",
                 "a breached commitment stays breached; withdraw it to take it back")]
    return []


def public_kind(item: CatalogueItem | None) -> str:
    return item.commitment.kind if item is not None and item.commitment else REPAIR_KIND


def _add_months(day: date, months: int) -> date:
    from shared.disclosure import add_months  # disclosure imports this module
    return add_months(day, months)
