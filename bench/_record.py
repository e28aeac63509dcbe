"""Benchmarks print one JSON line and append a row to docs/benchmarks.md with machine, device and commit."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path

from glyphsr._version import git_commit

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        kb = int(next(ln for ln in meminfo if ln.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} cores {cpu}{mem}"


def commit() -> str:
    found = git_commit(ROOT)
    return "unknown" if found is None else found[0] + ("+dirty" if found[1] else "")


def record(bench: str, result: dict, summary: str, device: str = "cpu", write: bool = True) -> dict:
    """Print ``result`` as one JSON line and append ``summary`` as a row of docs/benchmarks.md."""
    row = {"bench": bench, "date": _dt.date.today().isoformat(), "machine": machine(), "device": device,
           "commit": commit(), **result}
    print(json.dumps(row))
    if write:
        DOC.parent.mkdir(exist_ok=True)
        if not DOC.exists():
            DOC.write_text("# Benchmarks\n\nEach row is appended by a script in `bench/`; it names the machine, "
                           "device and commit it ran on.\n\n| date | bench | result | machine | device | commit |\n"
                           "| --- | --- | --- | --- | --- | --- |\n")
        with DOC.open("a") as f:
            f.write(f"| {row['date']} | {bench} | {summary} | {row['machine']} | {device} | {row['commit']} |\n")
    return row
