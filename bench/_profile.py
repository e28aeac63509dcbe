"""The table of glyphsr's own profiler ranges (``record_function("glyphsr....")``: the trainer's phases and the
network's parts), shared by ``bench_train --profile`` and ``bench_infer --profile``."""

from __future__ import annotations


def ranges_table(averages, cuda: bool, per: int, per_label: str) -> str:
    """Rows of ``averages`` (``profile.key_averages()``) named glyphsr.*: where each was recorded (the CPU range,
    or its GPU annotation), calls, total milliseconds (the device's time on CUDA) and milliseconds per ``per``."""
    total = "device_time_total" if cuda else "cpu_time_total"
    lines = [f"{'range':<20} {'recorded on':<12} {'calls':>6} {'total ms':>10} {'ms per ' + per_label:>14}"]
    for e in sorted((e for e in averages if e.key.startswith("glyphsr.")), key=lambda e: -getattr(e, total, 0)):
        ms = getattr(e, total, 0) / 1000
        where = str(getattr(e, "device_type", "")).split(".")[-1]
        lines.append(f"{e.key:<20} {where:<12} {e.count:>6} {ms:>10.1f} {ms / per:>14.2f}")
    return "\n".join(lines)
