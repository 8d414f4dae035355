"""Masking of personal data (個人信息) before anything leaves the processing path (DOMAIN §8).

Logs, metric labels, alerts and dead-letter records must never carry a name, phone number,
national ID number (身份證號) or address in clear text. Two tools serve every place:
`mask_text` for free text (finds phone and ID numbers by shape), `mask_json` for parsed records
(masks the values of the personal fields by name, then free text everywhere else).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# 18-digit resident ID (last may be X) or legacy 15-digit; mainland mobiles 1[3-9]x 11 digits,
# optionally +86; landlines 0xx-xxxxxxxx. Digit look-arounds keep longer numbers intact.
_ID_RE = re.compile(r"(?<![0-9])(?:[1-9][0-9]{16}[0-9Xx]|[1-9][0-9]{14})(?![0-9A-Za-z])")
_MOBILE_RE = re.compile(r"(?<![0-9])((?:\+?86[ -]?)?1[3-9][0-9])[ -]?([0-9]{4})[ -]?([0-9]{4})(?![0-9])")
_LANDLINE_RE = re.compile(r"(?<![0-9])(0[1-9][0-9]{1,2})-([0-9]{3,4})([0-9]{4})(?![0-9])")
# Any other run of 11+ digits (bank cards, numbers glued together) is masked the same way.
_LONG_DIGITS_RE = re.compile(r"(?<![0-9])[0-9]{11,}(?![0-9])")
# The local part is at most 64 characters (RFC 5321): bounded, a long run without an "@" costs
# linear time, not quadratic (of a longer run before an "@", which no address has, the part
# before its last 64 characters stays as it was).
_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{0,63}@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")

_KINDS: dict[str, frozenset[str]] = {
    "phone": frozenset(
        {"phone", "mobile", "tel", "telephone", "contactphone", "phonenumber", "mobilephone", "cellphone"}
        | {"customerphone", "phoneno", "mobileno", "telno", "msisdn"}
        | {"电话", "電話", "手机", "手機", "手机号", "手機號", "手机号码", "手機號碼", "联系电话", "聯繫電話"}
        | {"联络电话", "聯絡電話"}
    ),
    "id": frozenset(
        {"idnumber", "idcard", "idno", "idcardno", "idcardnumber", "nationalid", "identitycard", "identitynumber"}
        | {"sfz", "sfzh", "sfzhm", "身份证", "身份證", "身份证号", "身份證號", "身份证号码", "身份證號碼"}
        | {"证件号", "證件號", "证件号码", "證件號碼"}
    ),
    "address": frozenset(
        {"address", "addr", "homeaddress", "地址", "住址", "联系地址", "聯繫地址", "联络地址", "聯絡地址"}
    ),
    "email": frozenset({"email", "emailaddress", "contactemail", "邮箱", "郵箱", "电子邮件", "電子郵件"}),
    "name": frozenset(
        {"name", "customername", "contact", "contactname", "realname", "fullname", "firstname", "lastname"}
        | {"姓名", "名字", "联系人", "聯繫人", "联络人", "聯絡人", "客户姓名", "客戶姓名"}
    ),
}
_KIND_OF = {key: kind for kind, keys in _KINDS.items() for key in keys}
_SEPARATORS_RE = re.compile(r"[\s_\-.]")


def personal_kind(key: str | None) -> str | None:
    """What personal datum a field holds by its name ("phone", "id", "address", "email", "name"),
    or None: case, `_`, `-`, `.` and spaces ignored (`idNumber`, `ID-Card`, `contact_phone`), and
    the usual Chinese names in simplified and traditional script (身份证号 / 身份證號, 电话 / 電話),
    since channel systems add fields of their own beside the contract's. No such name is longer
    than 64 characters (and a longer key is not remembered)."""
    if not key or len(key) > 64:
        return None
    return _kind_of(key)


@lru_cache(maxsize=4096)  # field names repeat across every record: a lookup, not a regex, per field
def _kind_of(key: str) -> str | None:
    return _KIND_OF.get(_SEPARATORS_RE.sub("", key.lower()))


def mask_phone(phone: str) -> str:
    """138****5678: keep the first three and last four digits of a phone number."""
    digits = re.sub(r"[^0-9]", "", phone)
    if len(digits) <= 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_id_number(id_number: str) -> str:
    """110***********123X: keep the region prefix's first three and the last four characters."""
    if len(id_number) <= 7:
        return "*" * len(id_number)
    return f"{id_number[:3]}{'*' * (len(id_number) - 7)}{id_number[-4:]}"


def mask_name(name: str) -> str:
    """張*, J***: the first character only."""
    name = name.strip()
    return (name[:1] + "*" * max(1, len(name) - 1)) if name else ""


def mask_address(address: str) -> str:
    """Keep the first six characters (province/city level), hide the rest."""
    return address[:6] + "***" if len(address) > 6 else "***"


def mask_text(text: str) -> str:
    """Mask phone, ID and card numbers and e-mail addresses wherever they stand in free text."""
    text = _ID_RE.sub(lambda m: mask_id_number(m.group(0)), text)
    text = _MOBILE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    text = _LANDLINE_RE.sub(lambda m: f"{m.group(1)}-****{m.group(3)}", text)
    text = _LONG_DIGITS_RE.sub(lambda m: mask_id_number(m.group(0)), text)
    return _EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def mask_id_numbers(text: str) -> str:
    """Mask national ID numbers (15 or 18 characters) in free text and nothing else: for records
    whose reader needs the customer's phone (a work queue) but not the ID number."""
    return _ID_RE.sub(lambda m: mask_id_number(m.group(0)), text)


def looks_personal(text: str) -> bool:
    """Whether free text carries a mobile or landline number, a national ID number or an e-mail
    address. (A run of 11+ other digits is not counted here: ids with a timestamp in them are
    operational references; `mask_text` still masks such runs wherever text is masked.)"""
    return bool(_ID_RE.search(text) or _MOBILE_RE.search(text) or _LANDLINE_RE.search(text) or _EMAIL_RE.search(text))


def _mask_field(kind: str, value: str) -> str:
    """`value` masked as the personal datum `kind` (`personal_kind` of its field's name)."""
    if kind == "phone":
        return mask_phone(value)
    if kind == "id":
        return mask_id_number(value)
    if kind == "address":
        return mask_address(value)
    if kind == "email":
        return mask_text(value) if "@" in value else "***"
    return mask_name(value)


_KEY_RE = re.compile(r'"([^"\\]{1,64})"\s*:\s*')
_VALUE_RE = re.compile(r'"((?:[^"\\]|\\.)*)"?|-?[0-9][0-9.eE+-]*')
_COLON_RE = re.compile(r"\s*:")


def mask_keyed_text(text: str) -> str:
    """Mask personal fields in text that looks like JSON but does not parse (a truncated or
    broken message): every `"name": "..."`-shaped pair of a personal key is masked by its key,
    even when the closing quote is missing, then phone and ID shapes everywhere. A parser cannot
    help here, and names have no shape `mask_text` could find on its own. Only a personal key's
    value is read as a value: the value of any other key may be broken itself (a missing quote,
    a bad escape) and must not swallow the personal pair after it."""
    parts: list[str] = []
    done = 0
    for key in _KEY_RE.finditer(text):
        kind = personal_kind(key.group(1))
        if key.start() < done or kind is None:
            continue  # inside a value masked already, or not a personal field (scrubbed below)
        value = _VALUE_RE.match(text, key.end())
        if value is None:
            continue
        inner, end = value.group(1), value.end()
        if inner is None:  # a bare number
            masked = '"' + _mask_field(kind, value.group(0)) + '"'
        elif _COLON_RE.match(text, end):
            continue  # the "value" is the next key: this one has none (`"addr": "tel": ...`)
        else:
            closed = len(value.group(0)) == len(inner) + 2
            if closed and _KEY_RE.match(text, end - 1):
                closed, end = False, end - 1  # its closing quote opens the next key: the value was left open
            masked = '"' + _mask_field(kind, inner) + ('"' if closed else "")
        parts += [text[done : key.end()], masked]
        done = end
    parts.append(text[done:])
    return mask_text("".join(parts))


def mask_json(value: Any, key: str | None = None) -> Any:
    """A copy of a parsed JSON value with personal fields masked and free text scrubbed."""
    if isinstance(value, dict):
        return {k: mask_json(v, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_json(v, key) for v in value]
    kind = personal_kind(key)
    if isinstance(value, str):
        return mask_text(value) if kind is None else _mask_field(kind, value)
    if kind is not None and isinstance(value, (int, float)):
        return mask_phone(str(value))
    return value
