"""Synthesis speed of textzoom-synth (target: >= 500 samples/s on the project's 2-core machine).

    python -m bench.bench_synth --n 5000
Times ``generate`` end to end (rendering, degradation, encoding, LMDB writes) after a warm-up, with all cores
and with one process, in one run so the two can be compared as a ratio.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import click

from bench._record import record
from glyphsr.data.synth.fonts import available_fonts
from glyphsr.data.synth.generator import generate
from glyphsr.data.synth.words import word_buckets


def timed(n: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        generate(Path(tmp) / "s", n_train=n, n_test=0, seed=1, workers=workers)
        return n / (time.perf_counter() - t)


@click.command()
@click.option("--n", default=5000, show_default=True, help="Training samples per timed run.")
@click.option("--no-record", is_flag=True)
def main(n: int, no_record: bool) -> None:
    available_fonts(), word_buckets()  # one-time costs of a process, not of synthesis
    cores = os.cpu_count() or 1
    timed(min(n, 500), cores)  # warm-up
    all_cores = timed(n, cores)
    one = timed(n, 1)
    record("bench_synth", {"n": n, "workers": cores, "samples_per_s": round(all_cores, 1),
                           "samples_per_s_1_process": round(one, 1)},
           f"textzoom-synth {n:,} train samples: {all_cores:,.0f}/s with {cores} processes, {one:,.0f}/s with 1",
           write=not no_record)


if __name__ == "__main__":
    main()
