"""Shared bits of the command-line programs: one rich console, one error path.

Every program reports a usage problem or unusable input the same way: raise :class:`BadInput` (or call
:func:`fail`, which raises it). Click prints it as one red ``error:`` line on stderr and exits with status 2, the
status Click gives its own usage errors. Other exit statuses are each program's own (documented in its help).
"""

from __future__ import annotations

from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, highlight=False)  # progress, errors
report = Console(highlight=False)  # reports meant for stdout


class BadInput(click.ClickException):
    """Bad arguments or unusable input, found before any work starts: exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # Click's signature; the message goes to the shared console
        # the message is text, not markup: a path such as runs/[exp1] must come out as written
        console.print(f"[bold red]error:[/] {escape(self.format_message())}", soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Stop the program with ``message`` and exit status 2 (raises :class:`BadInput`)."""
    raise BadInput(message)
