"""Shared bits of the command-line programs: one rich console, one error path.

Every program reports a usage problem or unusable input the same way: raise :class:`BadInput` (or call
:func:`fail`, which raises it). Click prints it as one red ``error:`` line on stderr and exits with status 2, the
status Click gives its own usage errors. Other exit statuses are each program's own (documented in its help).
"""

from __future__ import annotations

import os
from pathlib import Path
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


def check_output_path(path: Path, option: str, folder: bool) -> None:
    """Refuse (ValueError, naming ``option`` and the path) an output that cannot be written: ``folder``: a
    folder to fill (made when missing), else a file to write (replaced when it exists). The path itself must be a
    folder (``folder``) or not one; every existing folder above it a folder, not a file; the nearest existing one
    writable."""
    for p in (path, *path.parents):
        if not p.exists():
            continue
        if p == path and folder and not p.is_dir():
            raise ValueError(f"{option} {path}: not a folder (a file of that name exists): choose another path")
        if p == path and not folder and p.is_dir():
            raise ValueError(f"{option} {path}: a folder, not a file: give a file name, e.g. {path / 'results.json'}")
        if p != path and not p.is_dir():
            raise ValueError(f"{option} {path} cannot be {'a folder' if folder else 'written'}: {p} is a file, not "
                             "a folder: choose another path")
        where = p if p.is_dir() else p.parent
        if not os.access(where, os.W_OK | os.X_OK):
            raise ValueError(f"{option} {path}: {where} is not writable here: choose another path")
        return
