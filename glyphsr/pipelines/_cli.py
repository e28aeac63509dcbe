"""Shared bits of the command-line programs: one rich console, error reporting."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(stderr=True, highlight=False)  # progress, errors
report = Console(highlight=False)  # reports meant for stdout


def fail(message: str, code: int = 2) -> NoReturn:  # noqa: F821
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    sys.exit(code)
