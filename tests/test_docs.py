"""The README is the first thing a user reads: it must name every method and command."""

from __future__ import annotations

import argparse
from pathlib import Path

from persona_mcp.cli import build_parser
from persona_mcp.operations import build_registry

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_operation_and_alias_is_documented() -> None:
    for op in build_registry():
        for name in (op.name, *op.aliases):
            assert f"`{name}`" in README, name


def test_every_cli_command_is_documented() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in commands.choices:
        assert f"persona-mcp {name}" in README, name


def test_readme_opens_with_the_two_commands() -> None:
    opening = README.split("\n\n")[1]
    assert "make run" in opening
    assert "make test" in opening
