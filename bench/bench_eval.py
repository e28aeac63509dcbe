"""sr-eval's speed on a TextZoom-size test set (4,373 images: easy 1,619, medium 1,411, hard 1,343) with the
default judge (RapidOCR) on the CPU: the first run, which judges the bicubic and HR rows and caches them, and a
second run that reads them from the cache. Target: under 3 minutes with the cache.

    python -m bench.bench_eval                      # synthesizes the tiers into a temporary folder
    python -m bench.bench_eval --data DIR           # a textzoom-synth folder or TextZoom's test/ folder
    python -m bench.bench_eval --threads 1 --no-record
    python -m bench.bench_eval --cached-runs 3      # the machine is noisy: the median of three cached runs

The command is timed as a user runs it (``python -m glyphsr.pipelines.sr_eval``, a fresh process, an empty
$GLYPHSR_CACHE, then the same again), on a checkpoint of the paper's network with random weights (the time does not
depend on the weights). Each run's stages (load, data, SR, reference rows, SR rows) come from sr-eval's JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from bench._record import record

TIERS = {"easy": 1619, "medium": 1411, "hard": 1343}
TARGET_S = 180.0


def truncate_lmdb(path: Path, n: int) -> None:
    """Keep the first ``n`` records of a textzoom-synth LMDB (with their glyph maps), rewritten atomically."""
    import lmdb

    from glyphsr.data.textzoom import TextZoomWriter

    tmp = path.with_name(path.name + ".cut")
    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        with env.begin() as txn, TextZoomWriter(tmp, overwrite=True) as w:
            for i in range(1, n + 1):
                w.add(txn.get(f"label-{i:09d}".encode()).decode(), txn.get(f"image_hr-{i:09d}".encode()),
                      txn.get(f"image_lr-{i:09d}".encode()), txn.get(f"glyph_hr-{i:09d}".encode()))
    finally:
        env.close()
    shutil.rmtree(path)
    tmp.rename(path)


def synth_tiers(root: Path, seed: int) -> None:
    """The synthetic test tiers at TextZoom's sizes (the generator makes equal tiers: cut medium and hard)."""
    from glyphsr.data.synth.generator import generate

    generate(root, 0, max(TIERS.values()), seed)
    for tier, n in TIERS.items():
        if n < max(TIERS.values()):
            truncate_lmdb(root / "test" / tier, n)


def random_checkpoint(path: Path, seed: int) -> Path:
    import torch

    from glyphsr.sr.checkpoint import write_checkpoint
    from glyphsr.sr.modeling import SRConfig, build_model
    from glyphsr.sr.train.config import RunConfig

    torch.manual_seed(seed)
    cfg = RunConfig(model=SRConfig(tpg_pretrained=False))  # the paper's network
    return write_checkpoint(path, build_model(cfg.model).state_dict(), {"config": cfg.to_dict(), "step": 0})


def run_eval(ckpt: Path, data: Path, out: Path, cache: Path, threads: int, batch: int) -> dict:
    env = {**os.environ, "GLYPHSR_CACHE": str(cache), "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "glyphsr.pipelines.sr_eval", "--checkpoint", str(ckpt), "--lmdb", str(data),
           "--device", "cpu", "--batch", str(batch), "--json", str(out)]
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(f"sr-eval exited {res.returncode}:\n{res.stderr[-3000:]}")
    js = json.loads(out.read_text())
    return {"wall_s": round(wall, 1), "stages_s": js["timings"], "sets": js["sets"], "json": js}


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="A textzoom-synth folder or TextZoom's test/ folder; default: synthesize TextZoom-size tiers.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=os.cpu_count() or 1, show_default=True, help="OMP_NUM_THREADS of sr-eval.")
@click.option("--batch", default=256, show_default=True)
@click.option("--cached-runs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Cached runs after the first; the summary gives each and the median (the machine is noisy).")
@click.option("--no-record", is_flag=True, help="Print only; don't append to docs/benchmarks.md.")
def main(data: str | None, seed: int, threads: int, batch: int, cached_runs: int, no_record: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        tmp = Path(tmp)
        root = Path(data) if data else tmp / "synth"
        t = time.perf_counter()
        if data is None:
            synth_tiers(root, seed)
        synth_s = time.perf_counter() - t
        ckpt = random_checkpoint(tmp / "ckpt", seed)
        first = run_eval(ckpt, root, tmp / "first.json", tmp / "cache", threads, batch)
        print(json.dumps({"run": "first", "wall_s": first["wall_s"], "stages_s": first["stages_s"]}), flush=True)
        runs = []
        for k in range(cached_runs):
            runs.append(run_eval(ckpt, root, tmp / f"cached{k}.json", tmp / "cache", threads, batch))
            print(json.dumps({"run": f"cached {k + 1}", "wall_s": runs[-1]["wall_s"],
                              "stages_s": runs[-1]["stages_s"]}), flush=True)
        a = first["json"]
        same = all(a["accuracy"] == r["json"]["accuracy"] and a["metrics"] == r["json"]["metrics"]
                   for r in runs)  # the cache changes no figure
        n = sum(first["sets"].values())
    cached = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]  # the median run (the upper one of two)
    ok = cached["wall_s"] < TARGET_S
    result = {"images": n, "sets": first["sets"], "data": data or f"synthetic seed {seed}", "threads": threads,
              "batch": batch, "judge": "rapidocr", "first": {k: first[k] for k in ("wall_s", "stages_s")},
              "cached": {k: cached[k] for k in ("wall_s", "stages_s")},
              "cached_runs_s": [r["wall_s"] for r in runs], "cached_figures_equal": same,
              "synth_s": round(synth_s, 1), "target_s": TARGET_S, "within_target": ok}

    def stages(r: dict) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {v:.0f}" for k, v in r["stages_s"].items())

    summary = (f"sr-eval, {n:,} images ({'/'.join(str(v) for v in first['sets'].values())}), rapidocr, paper network "
               f"(random weights), {threads} threads, network {a.get('precision') or 'fp32'}: first run "
               f"{first['wall_s']:.0f} s ({stages(first)}), with the cache {cached['wall_s']:.0f} s"
               + (f" (median of {len(runs)}: {', '.join(f'{r:.0f}' for r in result['cached_runs_s'])} s)"
                  if len(runs) > 1 else "")
               + f" ({stages(cached)}); target < {TARGET_S:.0f} s with the cache"
               + ("" if ok else " NOT met") + ("" if same else "; CACHED FIGURES DIFFER"))
    record("bench_eval", result, summary, write=not no_record)


if __name__ == "__main__":
    main()
