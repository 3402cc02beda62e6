"""Every setting an operator can give is named in the README (as ``BLOGHUB_<NAME>`` or in
its Settings paragraph as `<NAME>`), so a setting added without a word there is caught."""

from __future__ import annotations

import re
from pathlib import Path

from bloghub.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_named_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"`(?:BLOGHUB_)?([A-Z][A-Z0-9_]+)", text))
    missing = sorted(n.upper() for n in Settings.model_fields if n.upper() not in named)
    assert missing == [], f"settings the README does not name: {missing}"
