"""Look-alike input for strict-input tests: digits that are not ASCII, text with a newline.

Written with code points rather than literal characters, so the tests read unambiguously.
"""

from __future__ import annotations

ARABIC_INDIC_ZERO = 0x0660
FULLWIDTH_ZERO = 0xFF10
DEVANAGARI_ZERO = 0x0966


def with_digits(text: str, zero: int) -> str:
    """`text` with every ASCII digit replaced by the same digit of the script whose zero is
    `zero` (str.isdigit() and regex `\\d` accept those; DRS, STS and IAM do not)."""
    return text.translate({ord("0") + n: zero + n for n in range(10)})


def look_alikes(text: str) -> list[str]:
    """Variants of a valid identifier that a lax check (`$`, `\\d`, match()) would accept."""
    return [
        text + "\n",
        with_digits(text, ARABIC_INDIC_ZERO),
        with_digits(text, FULLWIDTH_ZERO),
        with_digits(text, DEVANAGARI_ZERO),
    ]
