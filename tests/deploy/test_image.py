"""The Dockerfile, read as its instructions: a base pinned to a Python patch release, the
dependencies installed from the lock in a layer of their own before the source is copied, a
numeric user, and tini as PID 1 in front of loginmetrics."""

from __future__ import annotations

import json
import re

from tests.deploy.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def index_of(keyword: str, containing: str = "") -> int:
    for index, (found, arguments) in enumerate(instructions()):
        if found == keyword and containing in arguments:
            return index
    raise AssertionError(f"no {keyword} with {containing!r} in the Dockerfile")


def test_base_image_is_a_pinned_python_patch_release() -> None:
    [base] = [arguments for keyword, arguments in instructions() if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base


def test_dependencies_are_installed_from_the_lock_before_the_source_is_copied() -> None:
    lock_copied = index_of("COPY", "constraints.txt")
    dependencies = index_of("RUN", "pip install -c constraints.txt -r")
    source = index_of("COPY", ". .")
    project = index_of("RUN", "pip install --no-deps")
    # The lock alone (no source) is copied for the dependency layer, so a code change keeps it.
    assert "." not in instructions()[lock_copied][1].split()[:-1]
    assert lock_copied < dependencies < source < project


def test_runs_as_a_numeric_user_under_tini() -> None:
    [user] = [arguments for keyword, arguments in instructions() if keyword == "USER"]
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), "a number, not a name (runAsNonRoot checks it)"
    assert "tini" in instructions()[index_of("RUN", "apt-get install")][1]
    [entrypoint] = [json.loads(a) for keyword, a in instructions() if keyword == "ENTRYPOINT"]
    assert entrypoint == ["tini", "--", "loginmetrics"]
    assert index_of("USER") > index_of("RUN", "pip install --no-deps")


def test_build_context_leaves_out_what_the_install_does_not_need() -> None:
    ignored = set(DOCKERIGNORE.read_text(encoding="utf-8").split())
    assert {".git", ".venv", "tests", "deploy", "docs"} <= ignored
    assert "README.md" not in ignored  # pyproject's readme: the build reads it
