"""The package version and a code version that names the git commit when there is one."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

__version__ = "0.1.0"


def git_commit(root: str | Path | None = None) -> tuple[str, bool] | None:
    """(12-digit commit, whether tracked files differ from it) of the git checkout at ``root`` (default: the one
    this package runs from), or None outside a checkout or without git."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit, bool(dirty)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``__version__``, plus ``+g<commit>`` (and ``.dirty``) when running from a git checkout.

    Stores and checkpoints record this, so a result can be traced to the code that made it. A copy without its git
    folder (e.g. a tree shipped to another machine) can name its commit in $GLYPHSR_CODE_VERSION.
    """
    if os.environ.get("GLYPHSR_CODE_VERSION"):
        return os.environ["GLYPHSR_CODE_VERSION"]
    found = git_commit()
    if found is None:
        return __version__
    commit, dirty = found
    return f"{__version__}+g{commit}" + (".dirty" if dirty else "")
