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
    """The metric table of docs/metrics.md: name -> the line it prints."""
    text = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    section = text.split("| metric |", 1)[1]
    return dict(re.findall(r"^\| `([a-z0-9_]+)` \| (.+) \|$", section, flags=re.M))


def metric_problems(text: str, table: dict[str, str]) -> list[str]:
    """Each metric the docs name that is not registered, and each declared one the README table misses
    or prints with other words than its declaration."""
    from bench import registry
    from bench.metrics import facts

    known = set(registry.metrics.names()) | set(registry.metrics.aliases())
    named = set(table) | {m for found in re.findall(r"--metrics ([a-z][a-z0-9_]+(?:,[a-z][a-z0-9_]+)*)", text) for m in found.split(",")}
    out = [f"docs name metric {m!r}, which is not registered" for m in sorted(named - known)]
    return out + [f"docs/metrics.md's metric table misses {m!r} or words it differently than bench/metrics/facts.py"
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


def test_every_metric_named_in_the_docs_exists_and_every_one_is_in_the_metric_table():
    assert len(readme_metric_table()) >= 15
    assert metric_problems(doc_text(), readme_metric_table()) == []


def test_every_stability_rule_named_in_the_docs_exists_and_every_one_is_named():
    assert rule_problems(doc_text()) == []


def test_every_command_named_in_the_docs_exists_and_every_one_is_named():
    from bench.cli import cli

    commands = set(cli.commands)
    named = set(re.findall(r"`bench ([a-z_]+)", doc_text()))
    assert named - commands == set() and len(commands) > 8
    assert commands - named == set()


def test_the_grid_file_example_is_the_smoke_grid():
    import yaml

    text = (REPO / "docs" / "grids.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n# ablations/smoke.yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == yaml.safe_load((REPO / "ablations" / "smoke.yaml").read_text())


# The README is a first screen; the reference lives in docs/ pages it links, and each page is held
# to the code it describes so that nothing drifts.

DOCS = REPO / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _table(page: str, head: str) -> list[str]:
    """The backticked first cells of the table in docs/<page> whose header starts with `| head |`."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {head} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(re.match(r"\| `([^`]+)`", line).group(1))
    return rows


def test_the_readme_is_one_screen_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 60
    linked = {target for target in LINK.findall(readme) if target.startswith("docs/")}
    assert linked == {f"docs/{p.name}" for p in DOCS.glob("*.md")}


def test_every_relative_link_in_the_readme_and_docs_resolves():
    for page in [REPO / "README.md", *DOCS.glob("*.md")]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links {target}, which does not exist"


def _commands():
    """(words, click command) for every bench command and subcommand."""
    import click

    from bench.cli import cli

    def walk(group, words):
        for name, command in sorted(group.commands.items()):
            if isinstance(command, click.Group):
                yield from walk(command, [*words, name])
            elif name != "list" or len(words) > 1:  # `bench list` is the alias of status
                yield [*words, name], command

    return list(walk(cli, ["bench"]))


def test_the_commands_page_names_every_command_and_every_option():
    rows = {re.match(r"\| `([^`]+)`", line).group(1): line
            for line in (DOCS / "commands.md").read_text(encoding="utf-8").splitlines() if line.startswith("| `bench")}
    missing = []
    for words, command in _commands():
        head = " ".join(words)
        row = next((r for name, r in rows.items() if name == head or name.startswith(head + " ")), None)
        assert row is not None, f"docs/commands.md has no row for {head}"
        for param in command.params:
            flags = [o for o in getattr(param, "opts", []) if o.startswith("--") and o != "--help"]
            if flags and not any(f in row for f in flags):
                missing.append(f"{head} {flags[0]}")
    assert not missing, f"docs/commands.md leaves out: {', '.join(missing)}"


def test_the_loop_key_table_is_the_loop_config():
    from bench.config.schema import LoopConfig, config_fields

    assert _table("grids.md", "key") == list(config_fields(LoopConfig))


def test_the_variant_metric_and_preset_tables_are_the_registries_and_files():
    import yaml

    from bench import registry

    assert sorted(_table("variants.md", "variant")) == sorted(registry.variants.names())
    assert sorted(_table("metrics.md", "metric")) == sorted(registry.metrics.names())
    answered = [p.stem for p in (REPO / "ablations").glob("*.yaml")
                if not yaml.safe_load(p.read_text()).get("pipeline_check")]
    assert sorted(_table("variants.md", "grid")) == sorted(answered)
    assert sorted(_table("reproduce.md", "preset")) == sorted(p.stem for p in (REPO / "ablations" / "reproduce").glob("*.yaml"))


def test_the_datasets_page_names_every_dataset():
    from bench import registry

    text = (DOCS / "datasets.md").read_text(encoding="utf-8")
    assert [n for n in registry.datasets.names() if f"`{n}`" not in text] == []
