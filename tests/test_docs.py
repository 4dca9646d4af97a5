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


# Names in the docs exist, and every registered one is named: metrics, stability rules, loop keys, commands.

def doc_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])


def readme_metric_table() -> dict[str, str]:
    """The README's metric table (its Metrics section): name -> the line it prints."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z0-9_]+)` \| (.+) \|$", section, flags=re.M))


def metric_problems(text: str, table: dict[str, str]) -> list[str]:
    """Each metric the docs name that is not registered, and each declared one the README table misses
    or prints with other words than its declaration."""
    from bench import registry
    from bench.metrics import facts

    known = set(registry.metrics.names()) | set(registry.metrics.aliases())
    named = set(table) | {m for found in re.findall(r"--metrics ([a-z][a-z0-9_]+(?:,[a-z][a-z0-9_]+)*)", text) for m in found.split(",")}
    out = [f"docs name metric {m!r}, which is not registered" for m in sorted(named - known)]
    return out + [f"the README's metric table misses {m!r} or words it differently than bench/metrics/facts.py"
                  for m, d in facts.METRICS.items() if table.get(m) != d.help.replace("|", "\\|")]


def rule_problems(text: str) -> list[str]:
    """Each rule key the docs name that no detector has, and each detector key the docs never name."""
    from bench.metrics import facts
    from bench.report.stability import Thresholds

    t = Thresholds()
    keys = {k for k, _, _ in t.rules()} | {k for k, _ in t.describe()}
    out = [f"docs name rule {g}.{m}, but {m!r} is not a declared value" for g, m in
           re.findall(r"`(collapse|reach|divergence)\.([a-z0-9_]+)", text) if m not in facts.VALUES and f"{g}.{m}" not in keys]
    return out + [f"rule {k!r} is named nowhere in README.md or docs/" for k in sorted(keys)
                  if f"`{k}`" not in text and f"`{k}=" not in text]


def test_every_metric_named_in_the_docs_exists_and_every_one_is_in_the_readme_table():
    assert len(readme_metric_table()) >= 15
    assert metric_problems(doc_text(), readme_metric_table()) == []


def test_every_stability_rule_named_in_the_docs_exists_and_every_one_is_named():
    assert rule_problems(doc_text()) == []


def test_the_readme_loop_key_table_is_the_loop_config():
    from bench.config.schema import LoopConfig, config_fields

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Loop keys (every run)", 1)[1].split("\n### ", 1)[0]
    assert set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)) == set(config_fields(LoopConfig))


def test_every_command_named_in_the_docs_exists_and_every_one_is_named():
    from bench.cli import cli

    commands = set(cli.commands)
    named = set(re.findall(r"`bench ([a-z_]+)", doc_text()))
    assert named - commands == set() and len(commands) > 8
    assert commands - named == set()


def test_the_readme_grid_example_is_the_smoke_grid():
    import yaml

    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n# ablations/smoke.yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == yaml.safe_load((REPO / "ablations" / "smoke.yaml").read_text())
