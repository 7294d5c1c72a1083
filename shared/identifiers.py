"""Identifier standards: GB 32100-2015 unified social credit codes (統一社會信用代碼) and
GB 11643-1999 resident identity numbers (公民身份號碼), and the name-based UUIDs (RFC 4122
version 5) this system gives its events, notices and list entries. Pure functions, no I/O.

Each check returns a list of `IdentifierError` (empty when valid) so the caller can name
the field and the rule that failed.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date

# GB 32100-2015: 31 symbols, 0-9 and A-Z without I, O, S, V, Z.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
# Weight of position i (1-based) is 3^(i-1) mod 31.
USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))

# GB 11714 organization code (positions 9-17 of the USCC): weights over 8 characters, mod 11.
ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# GB 11643-1999: ISO 7064 MOD 11-2.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

# DOMAIN.md: registration authority + organization category -> subject type.
USCC_CATEGORY_SUBJECT_TYPE = {
    "91": "enterprise",
    "92": "enterprise",
    "93": "enterprise",
    "11": "government",  # 机关 (政务诚信)
    "12": "institution",
    "13": "government",  # 群团组织: budget-funded, under the staffing system (decisions.md)
    "51": "social_org",
    "52": "social_org",
    "53": "social_org",
}


@dataclass(frozen=True)
class IdentifierError:
    code: str
    message: str


def normalize_identifier(raw: str) -> str | None:
    """An identifier as typed or sent, in the one form every check and every key uses: NFKC
    (full-width digits and letters become ASCII), trimmed, upper case. None when anything but
    ASCII letters and digits remains, so that no later step meets a character it cannot
    handle."""
    folded = unicodedata.normalize("NFKC", raw).strip().upper()
    return folded if folded.isascii() and folded.isalnum() else None


def uscc_check_character(first17: str) -> str:
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def org_code_check_character(first8: str) -> str | None:
    """GB 11714 check character, or None when the body holds a non-alphanumeric."""
    total = 0
    for ch, w in zip(first8, ORG_CODE_WEIGHTS, strict=True):
        if ch.isdigit():
            total += int(ch) * w
        elif "A" <= ch <= "Z":
            total += (ord(ch) - ord("A") + 10) * w
        else:
            return None
    value = 11 - total % 11
    return {10: "X", 11: "0"}.get(value, str(value))


def check_uscc(
    code: str,
    subject_type: str | None = None,
    legacy_allowed: frozenset[str] = frozenset(),
) -> list[IdentifierError]:
    """Validate a unified social credit code.

    `legacy_allowed` is the catalogue's documented allow-list of codes issued by early pilot
    regions that fail the checksum (DOMAIN.md); they skip only the check characters, never
    the format or category rules.
    """
    if len(code) != 18:
        return [IdentifierError("length", f"must be 18 characters, got {len(code)}")]
    bad = sorted({ch for ch in code if ch not in _USCC_VALUE})
    if bad:
        return [IdentifierError("alphabet", f"characters not allowed by GB 32100: {''.join(bad)}")]
    errors: list[IdentifierError] = []
    category = code[:2]
    mapped = USCC_CATEGORY_SUBJECT_TYPE.get(category)
    if subject_type is not None and mapped != subject_type:
        what = mapped or "no subject type"
        errors.append(
            IdentifierError(
                "category",
                f"authority/category {category} denotes {what}, not {subject_type}",
            )
        )
    if code in legacy_allowed:
        return errors
    expected = uscc_check_character(code[:17])
    if code[17] != expected:
        errors.append(
            IdentifierError("checksum", f"check character is {code[17]}, expected {expected}")
        )
    return errors


def parse_birth_date(id_number: str) -> date | None:
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


def check_resident_id(id_number: str, today: date) -> list[IdentifierError]:
    if len(id_number) != 18:
        return [IdentifierError("length", f"must be 18 characters, got {len(id_number)}")]
    if not id_number[:17].isdigit() or id_number[17] not in "0123456789X":
        return [IdentifierError("format", "17 digits followed by a digit or X")]
    birth = parse_birth_date(id_number)
    if birth is None:
        return [IdentifierError("birth_date", f"{id_number[6:14]} is not a real date")]
    if birth > today:
        return [IdentifierError("birth_date", f"birth date {birth} is in the future")]
    total = sum(int(ch) * w for ch, w in zip(id_number[:17], ID_WEIGHTS, strict=True))
    expected = ID_CHECK[total % 11]
    if id_number[17] != expected:
        return [
            IdentifierError("checksum", f"check digit is {id_number[17]}, expected {expected}")
        ]
    return []


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


# 民法典 第十七条: a natural person of 18 or more is an adult. 未成年人保护法（2020年修订）
# 第四条 protects minors' privacy and personal information, and 法释〔2017〕7号 keeps minors
# off the dishonest-debtor list: nobody under 18 on a decision date is listed, shown or named.
ADULT_AGE = 18


def is_minor_on(identity_number: str, day: date) -> bool:
    """Whether the person was under 18 on `day` (a record's decision date), read from the
    birth date inside a GB 11643 number (in normal form: shared.identifiers.normalize_identifier).
    A number whose birth date cannot be read counts as a minor's: what cannot be shown to be
    an adult's is not published or linked."""
    digits = identity_number[6:14]
    if len(identity_number) != 18 or not (digits.isascii() and digits.isdigit()):
        return True
    birth = parse_birth_date(identity_number)
    return birth is None or age_on(birth, day) < ADULT_AGE


def mask_resident_id(id_number: str) -> str:
    """Public form of an identity number: the first 6 characters (the address code) and the
    check character, nothing else (CONTRACT.md, public query site). The last 4 would leave
    only the birth date hidden, which a name and a few thousand guesses recover; with the
    sequence number hidden too, millions of numbers share each masked form."""
    if len(id_number) <= 7:
        return "*" * len(id_number)
    return id_number[:6] + "*" * (len(id_number) - 7) + id_number[-1]


def is_uuid(value: str) -> bool:
    """Whether a path or body value names something by a UUID (ids this system gives)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """`str(uuid.uuid5(namespace, name))`, computed without building UUID objects: every
    event id, notice id and list-change id is one (SHA-1 of namespace and name, version 5,
    RFC 4122 variant)."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode(),
                                    usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
