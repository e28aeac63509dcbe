"""sr-infer's speed: images/s through ``glyphsr.sr.infer.super_resolve_images`` (LR images in memory -> uint8 windows
to the device, RGBM, forward, blending, uint8 SR back), the full GlyphSR network with random weights (its speed does
not depend on them), windows of many images batched together.

    python -m bench.bench_infer                                  # CPU: float32 and bfloat16 autocast, batch 32
    python -m bench.bench_infer --device cuda --batch 512 --batch 2048 --n 20000 --lines 8000
    python -m bench.bench_infer --n 8 --lines 4 --no-record      # a quick check that it runs

Workloads: ``fit``: 16x64 LR images (TextZoom's size, one window each); ``tiles``: long lines 16 x ``--line-width``
(default 133, what a 2500x300 line becomes; 3 windows each). Decoding the input files and writing PNGs are not in
these figures: ``io`` gives their cost per image on one thread (a 160x40 PNG decoded and prepared, a 128x32 PNG
written), which ``sr-infer`` spreads over its threads.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

import click

from bench._profile import ranges_table
from bench._record import record


def make_images(n: int, width: int, seed: int = 0) -> list:
    import numpy as np
    from PIL import Image

    from glyphsr.sr.infer import prepare

    rng = np.random.default_rng(seed)
    return [prepare(Image.fromarray(rng.integers(0, 256, (16, width, 3), dtype=np.uint8)), "tiles")
            for _ in range(n)]


def measure(sr, images: list, batch: int, autocast: bool, device) -> dict:
    import torch

    from glyphsr.sr.infer import super_resolve_images, window_starts

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    # warm-up: one whole untimed pass, so every batch shape (the last, partial one too) has its kernels compiled and
    # its cuDNN/oneDNN plans chosen before the timed pass. With one batch of warm-up the first configuration of a
    # call read about half the second's, whichever deformable convolution it was: on an H200 (2026-11-28) 5,215 and
    # 6,029 images/s in two sessions against 10,435 and 10,244 (shapes not yet compiled or tuned, most likely)
    list(super_resolve_images(sr, enumerate(images), device=device, batch=batch, autocast=autocast))
    sync()
    t0 = time.perf_counter()
    n_out = sum(1 for _ in super_resolve_images(sr, enumerate(images), device=device, batch=batch,
                                                autocast=autocast))
    sync()
    dt = time.perf_counter() - t0
    windows = sum(len(window_starts(im.pixels.shape[2])) for im in images)
    return {"images": n_out, "images_per_s": round(n_out / dt, 2), "windows_per_s": round(windows / dt, 1),
            "seconds": round(dt, 2)}


def profile_forward(sr, batch: int, autocast: bool, device, passes: int = 3, rows: int = 25) -> str:
    """torch.profiler's tables for ``passes`` forward passes of ``batch`` 16x64 windows: the operators, then the
    network's parts (record_function ranges glyphsr.tpg, .srb, .gpm, .gfm) per pass."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile


    cuda = device.type == "cuda"
    x = torch.rand(batch, 4, 16, 64, device=device)

    def run() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            sr(x)

    for _ in range(2):  # warm-up: allocator, cuDNN/oneDNN plans
        run()
    if cuda:
        torch.cuda.synchronize(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=acts) as prof:
        for _ in range(passes):
            run()
        if cuda:
            torch.cuda.synchronize(device)
    averages = prof.key_averages()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return (averages.table(sort_by=key, row_limit=rows, max_name_column_width=60) + "\n"
            + f"batch {batch}, {'bf16' if autocast else 'fp32'}, {passes} passes\n"
            + ranges_table(averages, cuda, passes, "pass"))


def io_costs(n: int = 100) -> dict:
    """Milliseconds per image, one thread: decode + prepare a 160x40 PNG; write a 128x32 PNG."""
    import numpy as np
    from PIL import Image

    from glyphsr.sr.infer import load_image

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.png"
        img = np.full((40, 160, 3), 230, np.uint8)
        img[10:30, 10:150] = rng.integers(0, 120, (20, 140, 3))
        Image.fromarray(img).save(src)
        t0 = time.perf_counter()
        for _ in range(n):
            load_image(src)
        load = (time.perf_counter() - t0) / n
        out = Image.fromarray(np.asarray(Image.fromarray(img).resize((128, 32), Image.BICUBIC)))
        t0 = time.perf_counter()
        for k in range(n):
            out.save(Path(d) / f"o{k % 4}.png", format="PNG")
        save = (time.perf_counter() - t0) / n
    return {"load_ms": round(load * 1000, 3), "save_ms": round(save * 1000, 3)}


@click.command()
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch", "batches", multiple=True, type=int, help="Windows per forward pass (default 32, cuda 512).")
@click.option("--precision", "precisions", multiple=True, type=click.Choice(["fp32", "bf16"]),
              help="Default: fp32 and bf16 on the CPU, bf16 on CUDA.")
@click.option("--n", default=None, type=int, help="16x64 images (default 128, cuda 20000).")
@click.option("--lines", default=None, type=int, help="Long lines (default 48, cuda 8000).")
@click.option("--line-width", default=133, show_default=True, help="LR width of the long lines (height 16).")
@click.option("--threads", default=None, type=int, help="torch threads on the CPU (default: torch's).")
@click.option("--layout", "layouts", multiple=True, type=click.Choice(["auto", "channels-last", "contiguous"]),
              help="Memory layout of the network and its inputs (default auto: what sr-infer does, channels-last "
                   "on the CPU and CUDA since 2026-11-28).")
@click.option("--profile", "do_profile", is_flag=True,
              help="Only torch.profiler's tables for forward passes of 16x64 windows at the first batch, precision "
                   "and layout (the operators, then the network's parts); no measurements.")
@click.option("--kernels", "kernel_sets", multiple=True,
              type=click.Choice(["default", "native", "deform-torchvision", "deform-grid"]),
              help="default: what the network picks (on CUDA: Triton GRUs, resizing by matrix products, the "
                   "deformable convolutions as one grid_sample); native: cuDNN's GRUs, F.interpolate and "
                   "torchvision's deformable convolution; deform-torchvision: torchvision's deformable convolution "
                   "(GLYPHSR_DEFORM=torchvision); deform-grid: GLYPHSR_DEFORM=grid. Default: default.")
@click.option("--no-record", is_flag=True, help="Print only; do not append to docs/benchmarks.md.")
def main(device, batches, precisions, n, lines, line_width, threads, layouts, kernel_sets, do_profile,
         no_record) -> None:
    import torch

    from glyphsr.data.decode import scoped_environ
    from glyphsr.sr.modeling import SRConfig, build_model
    from glyphsr.sr.runtime import sr_function

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if threads:
        torch.set_num_threads(threads)
    batches = batches or ((512,) if cuda else (32,))
    precisions = precisions or (("bf16",) if cuda else ("fp32", "bf16"))
    n = n if n is not None else (20000 if cuda else 128)
    lines = lines if lines is not None else (8000 if cuda else 48)
    layouts = layouts or ("auto",)

    def sr_fn(layout: str):
        model = build_model(SRConfig(tpg_pretrained=False)).to(dev).eval()
        if layout == "auto":
            return sr_function(model, dev)
        fmt = torch.channels_last if layout == "channels-last" else torch.contiguous_format
        model.to(memory_format=fmt)
        return lambda x: model(x.contiguous(memory_format=fmt)).sr

    if do_profile:
        print(profile_forward(sr_fn(layouts[0]), batches[0], precisions[0] == "bf16", dev), flush=True)
        return
    workloads = {"fit 16x64": make_images(n, 64), f"tiles 16x{line_width}": make_images(lines, line_width, seed=1)}
    results = []
    kernel_sets = kernel_sets or ("default",)
    configs = [(k, layout, p, b, name) for k in kernel_sets for layout in layouts for p in precisions
               for b in batches for name in workloads]
    sr, built = None, None
    for k, layout, p, b, name in configs:
        images = workloads[name]
        if not images:
            continue
        if built != layout:
            sr, built = sr_fn(layout), layout
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        env = {"native": {"GLYPHSR_GRU": "native", "GLYPHSR_RESIZE": "native", "GLYPHSR_DEFORM": "torchvision"},
               "deform-torchvision": {"GLYPHSR_DEFORM": "torchvision"},
               "deform-grid": {"GLYPHSR_DEFORM": "grid"}}.get(k, {})
        try:
            with scoped_environ(env):
                r = measure(sr, images, b, p == "bf16", dev)
        except Exception as exc:  # noqa: BLE001 - one failing configuration (e.g. out of memory) is reported
            r = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        peak = (torch.cuda.max_memory_allocated(dev) if cuda
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        r = {"workload": name, "layout": layout, "precision": p, "batch": b, **r, "peak_gb": round(peak / 1e9, 2)}
        if k != "default":
            r["kernels"] = k
        print(json.dumps(r), flush=True)
        results.append(r)
    io = io_costs()
    print(json.dumps({"io": io}), flush=True)
    dev_name = torch.cuda.get_device_name(dev) if cuda else f"cpu ({torch.get_num_threads()} torch threads)"
    summary = "sr-infer core, full model (random weights): " + "; ".join(
        f"{r['workload']} {r['precision']}{'' if r['layout'] == 'auto' else ' ' + r['layout']} b{r['batch']} "
        + (f"kernels {r['kernels']} " if r.get("kernels") else "")
        + (r["error"][:60] if "error" in r else f"{r['images_per_s']:.1f} img/s ({r['windows_per_s']:.0f} windows/s)")
        for r in results) + f"; io per image: decode+prepare {io['load_ms']:.2f} ms, PNG write {io['save_ms']:.2f} ms"
    record("bench_infer", {"results": results, "io": io, "torch": torch.__version__,
                           "threads": torch.get_num_threads()}, summary, device=dev_name, write=not no_record)


if __name__ == "__main__":
    main()
