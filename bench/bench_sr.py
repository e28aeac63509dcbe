"""The GlyphSR network on this machine: parameters, forward FLOPs per sample, training-step throughput and peak
memory, for the full model and Baseline1.

    python bench/bench_sr.py                       # CPU, batch 48
    python bench/bench_sr.py --device cuda --batch 48 --batch 512 --dtype float32 --dtype bfloat16

A training step = forward, GlyphSRLoss (pixel MSE, offline text focus with the frozen CRNN, HOG, glyph loss on
random pseudo-labels), backward and an Adam update, on random LR/HR tensors of the TextZoom sizes. FLOPs are counted
by torch's FlopCounterMode (convolutions, matrix products; deformable convolutions and GRU kernels are not
counted, so the figure is a lower bound). Each configuration runs in its own process so peak memory (max RSS on
the CPU, max allocated on CUDA) is its own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._record import ROOT, record  # noqa: E402

VARIANTS = {"full": {}, "baseline1": {"variant": "baseline1"}}


def measure(variant: str, batch: int, device: str, dtype: str, steps: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from glyphsr.sr.losses import GlyphSRLoss
    from glyphsr.sr.modeling import SRConfig, build_model

    dev = torch.device(device)
    model = build_model(SRConfig(**VARIANTS[variant])).to(dev).train()
    crit = GlyphSRLoss().to(dev)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.eval()(torch.rand(1, 4, 16, 64, device=dev))
    model.train()
    flops = fc.get_total_flops()
    lr, hr = torch.rand(batch, 4, 16, 64, device=dev), torch.rand(batch, 4, 32, 128, device=dev)
    line = (torch.rand(batch, 1, 32, 128, device=dev) > 0.7).float()
    char = (torch.rand(batch, 15, 32, 128, device=dev) > 0.95).float()
    labels = ["glyph"] * batch
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def step() -> None:
        with amp:
            out = model(lr)
            loss = crit(out, hr, labels, line, char)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"variant": variant, "device": device, "dtype": dtype, "batch": batch, "params_m": round(params / 1e6, 2),
            "gflops_per_sample": round(flops / 1e9, 3), "samples_per_s": round(steps * batch / seconds, 1),
            "step_s": round(seconds / steps, 3), "peak_gb": round(peak / 2**30, 2)}


@click.command()
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch", "batches", multiple=True, type=int, default=(48,), show_default=True)
@click.option("--dtype", "dtypes", multiple=True, type=click.Choice(["float32", "bfloat16"]), default=("float32",))
@click.option("--steps", default=3, show_default=True)
@click.option("--one", default=None, hidden=True, help="internal: one configuration as JSON")
@click.option("--no-record", is_flag=True)
def main(device: str, batches: tuple[int, ...], dtypes: tuple[str, ...], steps: int, one: str | None,
         no_record: bool) -> None:
    if one:
        a = json.loads(one)
        print(json.dumps(measure(a["variant"], a["batch"], device, a["dtype"], steps)), flush=True)
        return
    rows = []
    for variant in VARIANTS:
        for batch in batches:
            for dtype in dtypes:
                arg = json.dumps({"variant": variant, "batch": batch, "dtype": dtype})
                res = subprocess.run([sys.executable, __file__, "--device", device, "--steps", str(steps), "--one",
                                      arg], cwd=ROOT, capture_output=True, text=True)
                if res.returncode != 0:
                    raise SystemExit(f"{arg} failed:\n{res.stderr[-3000:]}")
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    summary = "GlyphSR training step: " + "; ".join(
        f"{r['variant']} b{r['batch']} {r['dtype']}: {r['samples_per_s']} samples/s, {r['peak_gb']} GB, "
        f"{r['params_m']} M params, {r['gflops_per_sample']} GFLOPs/sample fwd" for r in rows)
    record("bench_sr", {"runs": rows}, summary, write=not no_record, device=device)


if __name__ == "__main__":
    main()
