"""Reading what users type: a helper light enough for the CLI's parsers, which must not import pydantic or torch."""

from __future__ import annotations


def is_index(text: str) -> bool:
    """Whether `text` is a plain non-negative integer in ASCII digits ('12'); str.isdigit() also accepts '²' and '١',
    which int() then refuses or reads as another number."""
    return text.isascii() and text.isdigit()
