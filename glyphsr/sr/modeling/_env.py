"""The environment variables that choose the network's kernels (``GLYPHSR_GRU``, ``GLYPHSR_RESIZE``,
``GLYPHSR_DEFORM``): one reading and one error message for all of them."""

from __future__ import annotations

import os


def env_choice(name: str, choices: tuple[str, ...]) -> str:
    """``name``'s value, one of ``choices``; unset or empty: the first. Another value raises ValueError naming the
    variable."""
    value = os.environ.get(name, "").strip() or choices[0]
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value
