"""TOML reading on every supported Python: ``tomllib`` from 3.11 on, the ``tomli`` backport on 3.10.

The project declares Python 3.10 (``pyproject.toml``); every TOML read goes through
here so that no module imports ``tomllib`` directly.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TOMLDecodeError = tomllib.TOMLDecodeError


def parse_toml(text: str) -> dict[str, Any]:
    """The tables of a TOML document (``TOMLDecodeError`` when it is not valid TOML)."""
    return tomllib.loads(text)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tables of a TOML file, read as UTF-8 (``OSError`` / ``TOMLDecodeError`` as they come)."""
    return parse_toml(Path(path).read_text(encoding="utf-8"))
