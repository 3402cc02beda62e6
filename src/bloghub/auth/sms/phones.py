"""Phone numbers: one canonical form (E.164) for keys, rate limits and providers."""

from __future__ import annotations

import re

# [0-9] rather than \d: \d also matches other scripts' digits (e.g. Arabic-Indic), which
# would give two spellings of one number and let them slip past per-phone limits.
# China's trunk prefix 0 is dropped in international form (010 is +8610): a +860... number
# would be a second spelling of one, with limits of its own. Spelled without look-ahead,
# which the pattern's other readers (pydantic's engine, OpenAPI's) may not have.
_E164 = re.compile(r"\+(?:[1-79][0-9]{7,14}|8[0-57-9][0-9]{6,13}|86[1-9][0-9]{5,12})")
_CN_MOBILE = re.compile(r"(?:\+?86)?(1[3-9][0-9]{9})")
_CONTROL = re.compile(r"[\x00-\x1F\x7F-\x9F\u2028\u2029]")  # and the line separators


def normalise_phone(text: str) -> str:
    """``text`` in E.164 form (``+8613800138000``); ``ValueError`` if it is not a phone.

    Accepts E.164 (``+`` and 8-15 digits, the first non-zero; for China, not the trunk
    prefix 0 after ``+86``) and mainland China mobiles
    (``1[3-9]`` and 9 digits), bare or with a ``+86``/``86`` prefix. Surrounding spaces
    are ignored; nothing else (spaces within, dashes, letters) is, nor a control character
    anywhere (a newline or a tab is no part of a number typed into a field).
    """
    if _CONTROL.search(text) is not None:
        raise ValueError("must be a phone number without control characters or line breaks")
    candidate = text.strip()
    mobile = _CN_MOBILE.fullmatch(candidate)
    if mobile is not None:
        return f"+86{mobile.group(1)}"
    if _E164.fullmatch(candidate) is not None:
        return candidate
    raise ValueError(
        "not a phone number: use E.164 (+ then 8-15 digits, e.g. +8613800138000) "
        "or an 11-digit mainland China mobile, bare or after 86 (e.g. 13800138000)"
    )


def is_e164(text: str) -> bool:
    return _E164.fullmatch(text) is not None


def mask_phone(phone: str) -> str:
    """Enough of a number to tell messages apart in logs without logging the number."""
    if len(phone) <= 7:
        return "*" * len(phone)
    return f"{phone[:5]}{'*' * (len(phone) - 8)}{phone[-3:]}"
