"""gem-extract end to end on a synthetic training LMDB: throughput, peak memory, scaling.

    python -m bench.bench_gem_extract --n 5000                 # synthesizes 5,000 training pairs (seed 0)
    python -m bench.bench_gem_extract --data DIR/train --n 5000

Each configuration runs the real command (``python -m glyphsr.pipelines.gem_extract``) in a subprocess into a
fresh store: wall time of the whole command (fingerprint, cluster start, model loads, extraction, writes), the
job's own images/s (first submit to last shard recorded), the summed task time per phase, and the peak memory of
the command's process tree (sum of PSS, sampled every 0.5 s; RSS double-counts the libraries every worker maps).
Targets on the 2-core machine: >= 40 images/s end to end, < 4 GB peak.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import psutil

from bench._record import ROOT, record
from glyphsr.data.synth.generator import generate

CONFIGS = [(2, 256), (1, 256), (2, 64), (2, 1024)]  # (workers, shard size); the first is the default


def tree_memory(proc: psutil.Process) -> tuple[int, int]:
    """(sum of PSS, sum of RSS) in bytes over ``proc`` and its descendants."""
    pss = rss = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            info = p.memory_full_info()
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
        except psutil.Error:
            pass
    return pss, rss


def run(lmdb: Path, out: Path, workers: int, shard: int, limit: int) -> dict:
    cmd = [sys.executable, "-m", "glyphsr.pipelines.gem_extract", "--lmdb", str(lmdb), "--out", str(out),
           "--workers", str(workers), "--shard-size", str(shard), "--limit", str(limit), "--dashboard", ":0",
           "--skip-bad", "--gpus", "none"]
    peak = [0, 0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            pss, rss = tree_memory(ps)
            peak[0], peak[1] = max(peak[0], pss), max(peak[1], rss)
            stop.wait(0.5)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{output}")
    meta = json.loads((out / "zarr.json").read_text())["attributes"]["glyphsr"]
    last = meta["summary"]["last_run"]
    return {"workers": workers, "shard": shard, "images": limit, "wall_s": round(wall, 1),
            "end_to_end_images_per_s": round(limit / wall, 1), "job_images_per_s": last["images_per_s"],
            "task_seconds": last["task_seconds"], "peak_pss_gb": round(peak[0] / 2**30, 2),
            "peak_rss_gb": round(peak[1] / 2**30, 2), "ok": meta["summary"]["ok"]}


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None, help="A training LMDB.")
@click.option("--n", default=5000, show_default=True, help="Images per run.")
@click.option("--no-record", is_flag=True)
def main(data: str | None, n: int, no_record: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            generate(Path(tmp) / "synth", n_train=n, n_test=0, seed=0)
            lmdb = Path(tmp) / "synth" / "train"
        else:
            lmdb = Path(data)
        rows = []
        for workers, shard in CONFIGS:
            r = run(lmdb, Path(tmp) / f"m-{workers}-{shard}.zarr", workers, shard, n)
            print(json.dumps(r), flush=True)
            rows.append(r)
    d = rows[0]
    summary = (f"gem-extract {n:,} synthetic images, 2 workers x shard 256 (default): {d['end_to_end_images_per_s']}"
               f" img/s end to end ({d['wall_s']} s), job {d['job_images_per_s']} img/s, peak {d['peak_pss_gb']} GB"
               f" PSS ({d['peak_rss_gb']} GB RSS) | " + ", ".join(
                   f"{r['workers']}w x {r['shard']}: {r['end_to_end_images_per_s']} img/s e2e, job "
                   f"{r['job_images_per_s']}, {r['peak_pss_gb']} GB" for r in rows[1:]))
    record("bench_gem_extract", {"n": n, "runs": rows}, summary, write=not no_record)


if __name__ == "__main__":
    main()
