"""Every ``humansd ... --help`` is plain text for people: no reST markup from the docstrings."""
from __future__ import annotations

import argparse
import re

import pytest

from humansd_core.cli import build_parser, main
from humansd_core.commands import plain_text

MARKUP = re.compile(r"``|:(mod|func|class|meth|data|attr|obj|exc):`")


def _parsers(parser: argparse.ArgumentParser, name: str = "humansd") -> dict[str, argparse.ArgumentParser]:
    """``{"humansd generate": parser, ...}``: the parser and every sub-command's, recursively."""
    found = {name: parser}
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                found.update(_parsers(child, f"{name} {sub}"))
    return found


def test_plain_text_drops_roles_and_literals() -> None:
    doc = ("See :mod:`humansd_core.defaults` and :func:`~humansd_core.pose.load_pose_file`; ``--place fit``\n"
           "writes ``out.png``. Example::\n")
    assert plain_text(doc) == ("See humansd_core.defaults and load_pose_file; --place fit\n"
                               "writes out.png. Example:\n")


def test_no_help_text_carries_rest_markup() -> None:
    parsers = _parsers(build_parser())
    assert {"humansd generate", "humansd demo", "humansd convert", "humansd init-from-sd21", "humansd train",
            "humansd synth", "humansd pose render", "humansd pose convert"} <= set(parsers)
    for name, parser in parsers.items():
        text = parser.format_help()
        assert not MARKUP.search(text), f"{name} --help: {MARKUP.search(text).group(0)!r} in\n{text}"


def test_generate_help_shows_its_docstring_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "image 0 goes to out.png itself" in out and "--ckpt embedded" in out
    assert "or embedded for the tiny model shipped in the package" in " ".join(out.split())
