"""The docs keep up with the code: every CLI option is on docs/configuration.md, every alert
links to a runbook section of docs/operations.md that exists, and every relative link in the
README and docs/ leads to a file (and heading) that exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import click
import pytest
import yaml

from loginmetrics.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
OPERATIONS = DOCS / "operations.md"
ALERT_FILES = sorted((ROOT / "deploy" / "prometheus").glob("*.yml"))
LINKED_PAGES = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) or ![alt](target); the target ends at whitespace (a title may follow) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`+[^`]*`+")


def commands(group: click.Group, path: str = "loginmetrics") -> Iterator[tuple[str, click.Command]]:
    """The group itself and every command under it, subcommands of groups included."""
    yield path, group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


def long_flags() -> list[tuple[str, str]]:
    """(command, flag) for every long flag of every option, ``--pretty/--compact`` both."""
    found = []
    for path, command in commands(cli):
        for param in command.params:
            if isinstance(param, click.Option):
                for flag in [*param.opts, *param.secondary_opts]:
                    if flag.startswith("--"):
                        found.append((path, flag))
    return found


def prose_lines(text: str) -> Iterator[str]:
    """The lines of a markdown text outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: the rendered text in lower case, every character that
    is not a letter, digit, underscore, hyphen or space removed, each space made a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML renders as nothing
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a markdown page; a repeated one gets -1, -2 ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(page.read_text()):
        match = HEADING.match(line)
        if match is None:
            continue
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def alerts() -> list[tuple[str, dict[str, object]]]:
    """(file, rule) for every alerting rule of deploy/prometheus/*.yml."""
    found = []
    for path in ALERT_FILES:
        document = yaml.safe_load(path.read_text()) or {}
        for group in document.get("groups") or []:
            for rule in group.get("rules") or []:
                if "alert" in rule:
                    found.append((path.name, rule))
    return found


def relative_links() -> list[tuple[Path, str]]:
    """(page, target) for every link of the pages that does not leave the repository."""
    found = []
    for page in LINKED_PAGES:
        for line in prose_lines(page.read_text()):
            for target in LINK.findall(INLINE_CODE.sub("", line)):
                if urlsplit(target).scheme or target.startswith("//"):
                    continue
                found.append((page, target))
    return found


@pytest.mark.parametrize(("command", "flag"), long_flags())
def test_every_cli_option_is_documented(command: str, flag: str) -> None:
    documented = CONFIGURATION.read_text()
    assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", documented), (
        f"{command} {flag} is not on docs/configuration.md: add it to the table of {command} "
        "(option, environment variable, default, meaning)"
    )


def test_the_option_walk_finds_every_command() -> None:
    walked = {path for path, _ in commands(cli)}
    assert {"loginmetrics worker", "loginmetrics aggregate", "loginmetrics topics create"} <= walked
    assert ("loginmetrics print", "--compact") in long_flags()


@pytest.mark.parametrize(
    ("source", "rule"), alerts(), ids=[str(rule["alert"]) for _, rule in alerts()]
)
def test_every_alert_links_to_its_runbook(source: str, rule: dict[str, object]) -> None:
    name = str(rule["alert"])
    annotations = rule.get("annotations")
    url = annotations.get("runbook_url") if isinstance(annotations, dict) else None
    assert url, f"{source}: alert {name} has no runbook_url annotation"
    parts = urlsplit(str(url))
    assert parts.path.endswith("docs/operations.md"), f"{name}: {url} is not docs/operations.md"
    assert parts.fragment == name.lower(), f"{name}: the anchor of {url} is not the alert's name"
    assert parts.fragment in anchors(OPERATIONS), (
        f"{name}: docs/operations.md has no heading '{name}' (anchor #{parts.fragment})"
    )


def test_the_alert_rules_are_found() -> None:
    assert len(alerts()) >= 10


@pytest.mark.parametrize(
    ("page", "target"),
    relative_links(),
    ids=[f"{page.relative_to(ROOT)}:{target}" for page, target in relative_links()],
)
def test_every_relative_link_leads_somewhere(page: Path, target: str) -> None:
    parts = urlsplit(target)
    linked = (page.parent / unquote(parts.path)).resolve() if parts.path else page
    assert linked.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
    if parts.fragment and linked.suffix == ".md":
        assert parts.fragment in anchors(linked), (
            f"{page.relative_to(ROOT)} links to {target}: {linked.relative_to(ROOT)} has no such "
            "heading"
        )


def test_anchors_are_made_as_github_makes_them() -> None:
    assert github_anchor("LoginMetricsNoMetricEvents") == "loginmetricsnometricevents"
    assert github_anchor("How is it? `loginmetrics status`") == "how-is-it-loginmetrics-status"
    assert github_anchor("Moving the workers' offsets") == "moving-the-workers-offsets"
    assert github_anchor("Recovery after kill -9") == "recovery-after-kill--9"
    assert github_anchor("Kafka with SASL, locally") == "kafka-with-sasl-locally"
    assert github_anchor("See [the docs](docs/x.md) now") == "see-the-docs-now"
