"""CLI sub-commands, one module each (see ``humansd_core.cli``), and what they share.

A command module imports nothing heavy at module level (building the parser must not
import torch) and checks its files before its handler imports the model code, so a
wrong path is reported at once. Its help text is its docstring, made plain by
:func:`plain_text` in :func:`add_command`.
"""
from __future__ import annotations

import argparse
import re

_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")  # :func:`~a.b.c` -> c, :mod:`a.b` -> a.b
_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)


def _role_text(match: re.Match[str]) -> str:
    short, target = match.groups()
    return target.rsplit(".", 1)[-1] if short else target


def plain_text(doc: str) -> str:
    """A reST docstring as text for people: roles and double backquotes dropped, ``::`` as ``:``."""
    text = _LITERAL.sub(r"\1", _ROLE.sub(_role_text, doc))
    return re.sub(r"(?<=\S)::$", ":", text, flags=re.MULTILINE)


def add_command(subparsers: argparse._SubParsersAction, name: str, doc: str | None, summary: str,
                ) -> argparse.ArgumentParser:
    """A sub-parser ``name`` whose description is ``doc`` as plain text (line breaks kept)."""
    return subparsers.add_parser(name, help=summary, description=plain_text(doc or summary),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
