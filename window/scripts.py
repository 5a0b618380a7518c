"""Loads the Lua scripts that live beside the modules registering them."""

from __future__ import annotations

from importlib import resources


def load_lua(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")
