"""Every reference to the protocol document names a section that exists, so a reader can follow it."""

from __future__ import annotations

import re

from conftest import REPO

REFERENCE = re.compile(r"docs/protocols\.md (?:§|section )?(\d+(?:\.\d+)*)(?:\s*(?:/|and|-)\s*§?(\d+(?:\.\d+)*))?")


def _sections() -> set[str]:
    text = (REPO / "docs" / "protocols.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)*)[. ]", text, flags=re.M))


def _references() -> list[tuple[str, str]]:
    out = []
    for folder in ("bench", "variants", "tests", "ablations"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".yaml") and path.is_file():
                for match in REFERENCE.finditer(path.read_text(encoding="utf-8")):
                    out += [(str(path.relative_to(REPO)), s) for s in match.groups() if s]
    return out


def test_every_protocol_reference_names_an_existing_section():
    sections, refs = _sections(), _references()
    assert len(refs) > 50  # the code cites the document throughout
    missing = sorted({(f, s) for f, s in refs if s not in sections})
    assert not missing, f"references to sections docs/protocols.md does not have: {missing}"


def test_nothing_points_outside_the_repository_for_its_protocols():
    for folder in ("bench", "variants", "tests", "ablations", "docs"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".yaml", ".md") and path.is_file() and path.name != "test_docs.py":
                text = path.read_text(encoding="utf-8")
                assert "PROTOCOLS" not in text and "shared/" not in text, path
