"""README.md is the Pi operator's only manual (the bundle ships it, not docs/), and code, units and
docs send readers to its sections by name: a link or a section renamed away leaves them nowhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# Where other files cite a README section: (README, "Files and secrets") or (README, On a Raspberry Pi).
CITED_SECTION = re.compile(r'\bREADME, (?:"([^"]+)"|([A-Z][A-Za-z ]+)\))')
CITING_FOLDERS = ("device", "provisioning", "systemd", "docs")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def headings(markdown: str) -> list[str]:
    """The section titles of ``markdown``, outside fenced code."""
    titles, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            titles.append(match[1].strip())
    return titles


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_anchor_is_githubs():
    assert anchor("On the Pi (`provisioning/install-pi.sh`)") == "on-the-pi-provisioninginstall-pish"


def test_headings_skip_comments_in_code():
    assert headings("# a\n```\n# not a heading\n```\n## b\n") == ["a", "b"]


@pytest.mark.parametrize("target", sorted(set(LINK.findall(README.read_text(encoding="utf-8")))))
def test_each_relative_link_of_the_readme_resolves(target):
    if re.match(r"[a-z]+:", target):
        pytest.skip("not a file of this repository")
    path, _, fragment = target.partition("#")
    linked = (README.parent / path).resolve() if path else README
    assert linked.exists(), f"README links to {path}, which does not exist"
    if fragment:
        titles = headings(linked.read_text(encoding="utf-8"))
        assert fragment in {anchor(t) for t in titles}, f"{path or 'README.md'} has no section #{fragment}"


def cited_sections() -> list[tuple[str, str]]:
    cited = []
    for folder in CITING_FOLDERS:
        for path in sorted((REPO / folder).rglob("*")):
            if not path.is_file() or path.suffix not in {".py", ".sh", ".md", ".service", ".timer", ".toml", ".example"}:
                continue
            for match in CITED_SECTION.finditer(path.read_text(encoding="utf-8", errors="replace")):
                # A citation may wrap onto a next comment line ("On a\n# Raspberry Pi").
                section = re.sub(r"\s*\n\s*(?:#\s*)?", " ", match[1] or match[2])
                cited.append((str(path.relative_to(REPO)), section))
    return cited


def test_the_citations_are_found():
    assert ("provisioning/install-pi.sh", "On a Raspberry Pi") in cited_sections()


@pytest.mark.parametrize(("citing", "section"), cited_sections())
def test_each_readme_section_cited_elsewhere_exists(citing, section):
    assert section in headings(README.read_text(encoding="utf-8")), f"{citing} cites README section {section!r}"
