"""The README's two commands are what CI runs and what a new user types."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)
    return [line.strip() for line in blocks[0].strip().splitlines() if line.strip() and not line.startswith("#")]


def test_readme_starts_with_two_commands() -> None:
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert "glyphsr-demo" in cmds[0] and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command_exactly() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci
