"""docs/science.md is the maintainers' specification (SCIENCE.md beside the checkout) word for word, so the
sections that code and docs cite say what the spec says."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO.parent / "shared" / "SCIENCE.md"


def body(text: str) -> str:
    """The text after docs/science.md's one-line provenance comment."""
    return text.split("-->\n\n", 1)[1] if text.startswith("<!--") else text


@pytest.mark.skipif(not SPEC.is_file(), reason="the maintainers' SCIENCE.md is not beside this checkout")
def test_docs_science_is_the_specification_word_for_word():
    assert body((REPO / "docs" / "science.md").read_text()) == SPEC.read_text()


def test_every_cited_section_exists():
    import re

    sections = set(re.findall(r"^## (\d+)\.", (REPO / "docs" / "science.md").read_text(), re.M))
    cited = set()
    for path in [*REPO.glob("docs/*.md"), REPO / "README.md", *REPO.glob("benchmark/**/*.py"), *REPO.glob("tests/*.py")]:
        cited |= set(re.findall(r"science\.md\)? §(\d+)", path.read_text()))
    assert cited and cited <= sections, f"cited {sorted(cited)}, present {sorted(sections)}"
