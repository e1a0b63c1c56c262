"""Command line entry point: ``humansd <command> ...``.

Each command lives in its own module under ``humansd_core/commands/`` exposing
``register(subparsers)``; that function adds a sub-parser (``commands.add_command``:
its docstring as plain-text help) whose ``func`` default takes the parsed
``argparse.Namespace`` and returns an exit code. Building the parser imports no
torch, and each handler checks its files before importing the model code, so a
wrong path fails at once. Bad input exits with code 2 and ``error: <message>``.
The CLI talks to the user on purpose (``print``); library code logs instead.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .errors import HumanSDError

# Modules under humansd_core.commands, each with register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "pose",
    "demo",
    "convert",
    "generate",
    "synth",
    "train",
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``humansd`` parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="humansd", description="HumanSD: pose-guided human image generation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f".commands.{name}", __package__).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our own progress at INFO; other libraries' INFO chatter (open_clip's tokenizer lookup) only with --verbose.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(__package__).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args) or 0)
    except HumanSDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
