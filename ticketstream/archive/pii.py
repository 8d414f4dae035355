"""Personal data in the archive (DOMAIN §8, 個人信息保護法): masked, or masked plus encrypted.

Every archived record passes through `Protector.protect`: the values of personal fields (name,
phone, national ID, address, e-mail, by key) are replaced by their masked form, and phone and ID
numbers inside free text (content, notes, reasons) are masked where they stand. What was changed
is collected as {path: original}; in `encrypt` mode that dict is sealed with Fernet (AES-128-CBC
plus HMAC-SHA256, from `cryptography`) into one token stored beside the row, so an authorised
reader with the key can restore it (`tickets show --reveal`) and everyone else — reports,
exports, a leaked backup without the key — sees only masked data. In `mask` mode nothing is kept.
One token per row rather than one per field: one encryption per record, and the paths say which
fields were personal without revealing them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from ticketstream.privacy import _mask_field, mask_text, personal_kind

# Free text that may carry a phone or ID number, masked in place (the rest of the text is the
# complaint itself, which regulators and quality teams need).
FREE_TEXT_KEYS = frozenset({"content", "note", "reason", "result", "comment", "evidence"})


class ArchiveKeyError(ValueError):
    """The archive key is missing or wrong (a clear message instead of a cryptography traceback)."""


class Protector:
    """Masks (and in encrypt mode seals) personal data of archived records."""

    def __init__(self, mode: str = "mask", keys: str | None = None) -> None:
        if mode not in ("mask", "encrypt"):
            raise ValueError(f"archive_pii must be 'mask' or 'encrypt', got {mode!r}")
        self.mode = mode
        self._fernet: Any = None
        if keys:
            from cryptography.fernet import Fernet, MultiFernet

            try:
                self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])
            except (ValueError, TypeError) as exc:
                raise ArchiveKeyError(
                    "archive_key is not a Fernet key (32 url-safe base64 bytes; "
                    "`ticketstream archive keygen` makes one)"
                ) from exc
        if mode == "encrypt" and self._fernet is None:
            raise ArchiveKeyError(
                "archive_pii = 'encrypt' needs archive_key (`ticketstream archive keygen` makes one; "
                "set TICKETSTREAM_ARCHIVE_KEY), or set archive_pii = 'mask'"
            )

    @staticmethod
    def generate_key() -> str:
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()

    def protect(self, value: Any) -> tuple[Any, str | None]:
        """(masked copy, sealed originals or None). Only changed values are kept as originals."""
        originals: dict[str, Any] = {}
        masked = _walk(value, None, (), originals)
        if not originals or self.mode == "mask":
            return masked, None
        return masked, self.seal(originals)

    def seal(self, originals: dict[str, Any]) -> str:
        token: bytes = self._fernet.encrypt(orjson.dumps(originals))
        return token.decode()

    def reveal(self, masked: Any, token: str | None) -> Any:
        """The record with its originals restored (needs the key that sealed them)."""
        if not token:
            return masked
        if self._fernet is None:
            raise ArchiveKeyError("the archive holds encrypted personal data: set archive_key to reveal it")
        from cryptography.fernet import InvalidToken

        try:
            originals = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ArchiveKeyError(
                "archive_key does not open this record's personal data (wrong or rotated-out key)"
            ) from None
        restored = json.loads(json.dumps(masked, ensure_ascii=False))
        for path, original in originals.items():
            restored = _put(restored, json.loads(path), original)
        return restored


def _walk(value: Any, key: str | None, path: tuple[Any, ...], originals: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, k if isinstance(k, str) else None, (*path, k), originals) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, key, (*path, i), originals) for i, v in enumerate(value)]
    lowered = key.lower() if key else None
    kind = personal_kind(key)
    if kind is not None and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        masked: Any = _mask_field(kind, str(value))
    elif isinstance(value, str) and (lowered in FREE_TEXT_KEYS or not path):
        masked = mask_text(value)
    else:
        return value
    if masked != value:
        originals[orjson.dumps(path).decode()] = value
    return masked


def _put(value: Any, path: list[Any], original: Any) -> Any:
    if not path:
        return original
    head, rest = path[0], path[1:]
    if (
        isinstance(value, dict)
        and head in value
        or isinstance(value, list)
        and isinstance(head, int)
        and 0 <= head < len(value)
    ):
        value[head] = _put(value[head], rest, original)
    return value
