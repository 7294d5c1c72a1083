"""The credit report (信用报告, CONTRACT.md "Public query site and API"): what it says and how
its verification code is made. Pure: no I/O.

A report prints what the public profile shows on the day of issue: it is built from the
profile's own answer (`api.PublicViews.profile`, i.e. `domain.public_subject` and
`domain.public_records`), so that the site and the report share one disclosure and masking
code. Its sections are data (`SECTIONS`): each picks its entries from the profile, and
takes from a record whatever it carries (provenance, commitments), so that fields added to
the profile appear in the report without a change here."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import clock
from shared.catalogue import Catalogue

# Crockford's base32: digits and capitals without I, L, O and U, so that a code read aloud
# or typed from paper has no look-alikes (I/L read as 1, O as 0 when typed).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_CHARS = 20          # 5 bits each: 100 random bits (the issue asks at least 80)
CODE_GROUP = 5           # printed as XXXXX-XXXXX-XXXXX-XXXXX
CODE_BITS = CODE_CHARS * 5
_TYPED_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})

EMPTY = "未查询到相关记录"
TITLE = "公共信用信息报告"
PURPOSE_MAX_CHARS = 200

LIST_KINDS = {"red": "红名单", "black": "黑名单"}
COMMITMENT_STATUS = {"kept": "履约中", "breached": "已违诺"}


def new_code(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A verification code: CODE_BITS random bits in groups of CODE_GROUP characters."""
    number = int.from_bytes(random_bytes((CODE_BITS + 7) // 8), "big") >> (-CODE_BITS % 8)
    chars = []
    for _ in range(CODE_CHARS):
        chars.append(ALPHABET[number & 31])
        number >>= 5
    return _grouped("".join(reversed(chars)))


def _grouped(plain: str) -> str:
    return "-".join(plain[i:i + CODE_GROUP] for i in range(0, len(plain), CODE_GROUP))


def normalize_code(text: str) -> str | None:
    """The code as printed, from what a clerk typed (any case, with or without the dashes
    and spaces, O for 0 and I or L for 1); None if it cannot be a code."""
    if len(text) > 64:
        return None
    plain = "".join(text.split()).replace("-", "").upper().translate(_TYPED_AS)
    if len(plain) != CODE_CHARS or any(c not in ALPHABET for c in plain):
        return None
    return _grouped(plain)


# --- what the report says ------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One section of the report: its title and how it picks its entries from the public
    profile (each entry a dict of what the template prints)."""

    key: str
    title: str
    entries: Callable[[Catalogue, Mapping[str, Any]], list[dict[str, Any]]]


def _department(catalogue: Catalogue, code: str | None) -> str:
    if code is None:
        return "—"
    found = catalogue.departments.get(code)
    return found.name if found else code


def _record_entry(catalogue: Catalogue, r: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": r.get("item_name") or r.get("catalogue_item"),
            "department": _department(catalogue, r.get("department")),
            "document_no": r.get("document_no") or "—",
            "date": r.get("decided_on"),
            "until": r.get("public_until"),
            "disputed": bool(r.get("disputed")),
            "provenance": _provenance(r.get("provenance"))}


def _provenance(p: Any) -> str | None:
    """The department's event that put the record there, as the profile gives it (once the
    profile carries `provenance`)."""
    if not isinstance(p, Mapping):
        return None
    parts = [f"{k}: {p[k]}" for k in ("event_id", "revision", "received_at") if p.get(k)]
    return "；".join(parts) or None


def _records_of(polarities: Sequence[str]) -> Callable[[Catalogue, Mapping[str, Any]],
                                                      list[dict[str, Any]]]:
    def pick(catalogue: Catalogue, profile: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [_record_entry(catalogue, r) for r in profile.get("records") or []
                if r.get("polarity") in polarities]
    return pick


def _other_records(catalogue: Catalogue, profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    known = {"negative", "positive"}
    return [_record_entry(catalogue, r) for r in profile.get("records") or []
            if r.get("polarity") not in known]


def _lists(catalogue: Catalogue, profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    records = {(r.get("department"), r.get("record_id")): r
               for r in profile.get("records") or []}
    out = []
    for m in profile.get("lists") or []:
        lst = catalogue.lists.get(m.get("list", ""))
        # A membership's basis, where the profile gives it, names the records it rests on;
        # else the list's own items say which departments list.
        basis = [records.get((b.get("department"), b.get("record_id")), b)
                 for b in m.get("basis") or []]
        departments = ([b.get("department") for b in basis] if basis
                       else [i.split(".", 1)[0] for i in (lst.items if lst else ())])
        out.append({"name": f"{m.get('name') or (lst.name if lst else m.get('list'))}"
                            f"（{LIST_KINDS.get(m.get('kind', ''), m.get('kind'))}）",
                    "department": "、".join(dict.fromkeys(
                        _department(catalogue, d) for d in departments)) or "—",
                    "document_no": "、".join(b.get("document_no") for b in basis
                                            if b.get("document_no")) or "—",
                    "date": m.get("since"), "until": m.get("until"), "disputed": False,
                    "provenance": "；".join(p for p in (_provenance(b.get("provenance"))
                                                       for b in basis) if p) or None})
    return out


def _commitments(catalogue: Catalogue, profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in profile.get("commitments") or []:
        signer = c.get("signer") or {}
        status = COMMITMENT_STATUS.get(c.get("status", ""), c.get("status"))
        out.append({"name": f"信用承诺（{status}）",
                    "department": _department(catalogue, c.get("department")),
                    "document_no": c.get("document_no") or c.get("commitment_id") or "—",
                    "date": c.get("signed_on"), "until": c.get("until"), "disputed": False,
                    "text": c.get("text"),
                    "signer": " ".join(v for v in (signer.get("name"), signer.get("role"))
                                       if v) or None,
                    "provenance": _provenance(c.get("provenance"))})
    return out


def _flags(catalogue: Catalogue, profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [_record_entry(catalogue, r) for r in profile.get("records") or []
            if r.get("disputed")]


SECTIONS: tuple[Section, ...] = (
    Section("penalties", "行政处罚等失信信息", _records_of(("negative",))),
    Section("lists", "红黑名单信息", _lists),
    Section("positive", "守信激励信息", _records_of(("positive",))),
    Section("other", "其他公共信用信息", _other_records),
    Section("commitments", "信用承诺信息", _commitments),
    Section("objections", "异议标注信息", _flags),
)

RULES = (
    "本报告内容与“信用珠海”网站出具当日公示的信息一致，仅包含公共信用信息目录标注为可公开、"
    "在公示期内的信息（《广东省公共信用信息管理条例》；国家发展改革委令第36号《失信行为纠正后的"
    "信用信息修复管理办法（试行）》）。",
    "个人的身份证号码仅显示前6位和校验位；未成年时的信息不予公示。",
    "已修复、已撤销、超过公示期限或依法删除的信息不再公示（《征信业管理条例》第十六条）。",
    "在广东省，公共信用信息报告可替代有无违法违规记录证明。",
)

HOW_TO_OBJECT = (
    "信用主体认为报告中的信息存在错误、遗漏的，可在“信用珠海”网站该主体页面或异议申请页面"
    "提出异议，受理后相关信息标注“异议处理中”；符合条件的失信信息可申请信用修复。"
)


def content(catalogue: Catalogue, profile: Mapping[str, Any], *, report_id: str, code: str,
            issued_at: datetime, data_as_of: datetime, purpose: str, verify_url: str,
            objection_url: str) -> dict[str, Any]:
    """Everything the template prints: plain data (it crosses to the rendering process)."""
    subject = profile["subject"]
    sections = []
    for s in SECTIONS:
        entries = s.entries(catalogue, profile)
        sections.append({"key": s.key, "title": s.title, "entries": entries,
                         "empty": EMPTY if not entries else None})
    return {
        "title": TITLE, "report_id": report_id, "code": code,
        "issued_at": _cst(issued_at), "data_as_of": _cst(data_as_of), "purpose": purpose,
        "subject": {"type": subject["type"], "id": subject["id"], "name": subject.get("name")},
        "grade": (profile.get("grade") or {}).get("grade"),
        "sections": sections, "rules": list(RULES), "verify_url": verify_url,
        "verify_url_base": verify_url.split("?", 1)[0],
        "how_to_object": HOW_TO_OBJECT, "objection_url": objection_url,
    }


def shown_records(profile: Mapping[str, Any]) -> list[str]:
    """`department/record_id` of every record the report prints: the purge erases the
    reports that show an erased record."""
    return sorted({f"{r['department']}/{r['record_id']}"
                   for r in profile.get("records") or []})


def _cst(at: datetime) -> str:
    return at.astimezone(clock.ZHUHAI).strftime("%Y-%m-%d %H:%M:%S")
