"""Phone numbers: every accepted spelling of a number gives one E.164 form (so codes and
limits keyed by phone cannot be dodged by re-spelling it), and anything else is refused."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bloghub.auth.sms.phones import is_e164, mask_phone, normalise_phone

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
digits = st.text(alphabet="0123456789", min_size=9, max_size=9)
cn_mobiles = st.builds(lambda second, rest: f"1{second}{rest}", st.sampled_from("3456789"), digits)


def other_digits(ascii_digits: str, zero: int) -> str:
    """The same number in another script's digits (Unicode digit ``zero`` and on)."""
    return "".join(chr(zero + int(d)) for d in ascii_digits)


@given(cn_mobiles, st.sampled_from(["", "86", "+86"]), st.sampled_from(["", " ", "  "]))
def test_china_mobiles_in_any_accepted_spelling_are_one_number(
    mobile: str, country: str, pad: str
) -> None:
    assert normalise_phone(f"{pad}{country}{mobile}{pad}") == f"+86{mobile}"


@given(
    cn_mobiles,
    st.sampled_from(["\n", "\t", "\r", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"]),
    st.sampled_from(["before", "after", "within"]),
)
def test_a_control_character_anywhere_is_refused(mobile: str, control: str, where: str) -> None:
    text = {
        "before": control + mobile,
        "after": mobile + control,
        "within": mobile[:3] + control + mobile[3:],
    }[where]
    with pytest.raises(ValueError, match="control characters"):
        normalise_phone(text)


@given(st.from_regex(E164, fullmatch=True).filter(lambda p: not p.startswith("+860")))
def test_e164_numbers_are_kept_as_they_are(phone: str) -> None:
    assert normalise_phone(phone) == phone


@given(st.text(max_size=24))
def test_whatever_is_accepted_is_e164(text: str) -> None:
    try:
        phone = normalise_phone(text)
    except ValueError:
        return
    assert is_e164(phone)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "+",
        "12345",  # too short
        "+1234567",  # 7 digits
        "+1234567890123456",  # 16 digits
        "+0123456789",  # country codes never start with 0
        "+86013800138004",  # China's trunk 0 is dropped in international form
        "+86010123456",
        "12800138000",  # 12x is not a China mobile prefix
        "1380013800",  # 10 digits
        "138001380000",  # 12 digits
        "+86 138 0013 8000",  # inner spaces are not accepted
        "138-0013-8000",
        "tel:+8613800138000",
        other_digits("13800138000", 0xFF10),  # full-width digits
        other_digits("13800138000", 0x0660),  # Arabic-Indic digits
        "+8613800138000 +1",
    ],
)
def test_non_phones_are_refused_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        normalise_phone(text)


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("13800138000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("+8613800138000", "+8613800138000"),
        (" +14155550123 ", "+14155550123"),
        ("+442071838750", "+442071838750"),
    ],
)
def test_examples(text: str, phone: str) -> None:
    assert normalise_phone(text) == phone


def test_masked_numbers_keep_only_their_ends() -> None:
    assert mask_phone("+8613800138000") == "+8613******000"
    assert "138001" not in mask_phone("+8613800138000")
