"""The real training loop's speed: samples/s and peak memory of ``Trainer.train_step`` (data gathered from uint8
tensors on the device, RGBM built per batch, forward, the default loss with the precomputed text-focus targets,
backward, fused Adam), for the full model and Baseline1, per batch size and precision.

    python -m bench.bench_train                                  # CPU, batch 48, fp32
    python -m bench.bench_train --device cuda --batch 48 --batch 128 --batch 512 --precision bf16 --precision fp32
    python -m bench.bench_train --device cuda --profile          # where the time of one configuration goes

Data are random images with random pseudo-labels (the loop's cost does not depend on their content). Peak memory:
``torch.cuda.max_memory_allocated`` per configuration on CUDA, max RSS of the process on the CPU.
"""

from __future__ import annotations

import gc
import json
import resource
import time

import click

from bench._profile import ranges_table
from bench._record import record

VARIANTS = {"full": {}, "baseline1": {"variant": "baseline1"}}


def random_data(n: int, seed: int = 0):
    import numpy as np

    from glyphsr.sr.train.data import build_tensors

    rng = np.random.default_rng(seed)
    words = ["Parking", "OPEN", "street", "42", "Hello", "exit-3", "cafe", "STOP"]
    return build_tensors(rng.integers(0, 256, (n, 3, 16, 64), dtype=np.uint8),
                         rng.integers(0, 256, (n, 3, 32, 128), dtype=np.uint8),
                         [words[i % len(words)] for i in range(n)],
                         (rng.random((n, 1, 16, 64)) * 5).astype(np.uint8),
                         (rng.random((n, 15, 16, 64)) * 1.2).astype(np.uint8), np.ones(n, bool))


def trainer_for(variant: str, batch: int, precision: str, device: str, compile_: bool = False, residual=False):
    import tempfile

    from glyphsr.sr.modeling import SRConfig
    from glyphsr.sr.train.config import RunConfig, TrainConfig
    from glyphsr.sr.train.loop import Trainer

    cfg = RunConfig(model=SRConfig(residual=residual, **VARIANTS[variant]),
                    train=TrainConfig(batch=batch, precision=precision, steps=10**6, warmup_steps=10,
                                      compile=compile_, log_every=10**9, val_every=0, ckpt_every=0))
    return Trainer(cfg, random_data(max(4 * batch, 256)), tempfile.mkdtemp(prefix="bench-train-"), device)


def measure(variant: str, batch: int, precision: str, device: str, steps: int, warmup: int,
            compile_: bool = False) -> dict:
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    t = trainer_for(variant, batch, precision, device, compile_)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        t.train_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        t.train_step()
    sync()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    out = {"variant": variant, "batch": batch, "precision": "bf16" if t.autocast else "fp32",
           "compile": compile_, "samples_per_s": round(steps * batch / dt, 1),
           "step_ms": round(dt / steps * 1000, 2), "peak_gb": round(peak / 1e9, 2)}
    del t
    gc.collect()
    return out


def profile(variant: str, batch: int, precision: str, device: str, rows: int = 25) -> str:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile


    t = trainer_for(variant, batch, precision, device)
    for _ in range(5):
        t.train_step()
    cuda = device.startswith("cuda")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    # on a GPU, memory events and five steps made the table take over 45 s to build (H200, 2026-11-28): two steps
    with torch_profile(activities=acts, profile_memory=not cuda) as p:
        for _ in range(2 if cuda else 5):
            t.train_step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    averages = p.key_averages()
    ops = averages.table(sort_by=key, row_limit=rows, max_name_column_width=60)
    lines = [ranges_table(averages, cuda, 2 if cuda else 5, "step")]  # the trainer's phases, the network's parts
    if cuda:  # autograd runs the backward on its own thread: those kernels are not inside glyphsr.backward
        lines.append("glyphsr.backward's kernels run on autograd's thread and may not count under the range: "
                     "read the backward in the operator table above")
    return ops + "\n" + "\n".join(lines)


#: Kernel choices ``--kernels`` measures beside the default (on CUDA the GRUs by Triton, resizing by matrix products
#: and the deformable convolutions as one grid_sample: glyphsr.sr.modeling.gru_triton, .resize, .deform), as
#: environment variables.
KERNEL_SETS = {
    "native": {"GLYPHSR_GRU": "native", "GLYPHSR_RESIZE": "native", "GLYPHSR_DEFORM": "torchvision"},
    "gru-native": {"GLYPHSR_GRU": "native"},
    "resize-native": {"GLYPHSR_RESIZE": "native"},
    "deform-torchvision": {"GLYPHSR_DEFORM": "torchvision"},
    "deform-grid": {"GLYPHSR_DEFORM": "grid"},
}


@click.command()
@click.option("--device", default="cpu", show_default=True)
@click.option("--variant", "variants", multiple=True, type=click.Choice(sorted(VARIANTS)))
@click.option("--batch", "batches", multiple=True, type=int)
@click.option("--precision", "precisions", multiple=True, type=click.Choice(["fp32", "bf16"]))
@click.option("--steps", default=20, show_default=True)
@click.option("--warmup", default=5, show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="Also measure torch.compile at the first configuration.")
@click.option("--compile-only", is_flag=True,
              help="Measure only torch.compile at the first configuration (with --gru-scan: also with the scan).")
@click.option("--profile", "do_profile", is_flag=True, help="Print torch.profiler's table for the first config.")
@click.option("--profile-only", is_flag=True, help="Only the profile: no measurements before it.")
@click.option("--gru-fp32", is_flag=True,
              help="Also measure the first variant and bf16 at each batch with the SR blocks' GRUs in float32 under "
                   "autocast (GLYPHSR_FP32_GRU; the CPU's default).")
@click.option("--gru-scan", is_flag=True,
              help="Also measure the first variant and bf16 at each batch with the GRUs as a scan of ordinary "
                   "operations (GLYPHSR_GRU=scan), and --compile with it.")
@click.option("--kernels", "kernel_sets", multiple=True, type=click.Choice(sorted(KERNEL_SETS)),
              help="Also measure the first variant and bf16 at each batch with these kernel choices: native (cuDNN's "
                   "GRUs, F.interpolate and torchvision's deformable convolution, the step before 2026-11-28's "
                   "kernels), gru-native, resize-native, deform-torchvision (GLYPHSR_DEFORM=torchvision), "
                   "deform-grid (GLYPHSR_DEFORM=grid, the default since 2026-11-28's third session).")
@click.option("--no-record", is_flag=True, help="Print only; do not append to docs/benchmarks.md.")
def main(device, variants, batches, precisions, steps, warmup, compile_, gru_fp32, gru_scan, compile_only,
         do_profile, profile_only, kernel_sets, no_record) -> None:
    variants = variants or ("full", "baseline1")
    batches = batches or (48,)
    precisions = precisions or (("bf16",) if device.startswith("cuda") else ("fp32",))
    results = []
    compile_ = (compile_ or compile_only) and not profile_only
    do_profile = do_profile or profile_only
    for v in ([] if compile_only or profile_only else variants):
        for b in batches:
            for p in precisions:
                try:
                    r = measure(v, b, p, device, steps, warmup)
                except Exception as exc:  # noqa: BLE001 - one failing configuration (e.g. out of memory) is reported
                    r = {"variant": v, "batch": b, "precision": p, "error": f"{type(exc).__name__}: {exc}"[:300]}
                print(json.dumps(r), flush=True)
                results.append(r)
    from glyphsr.data.decode import scoped_environ
    from glyphsr.sr.modeling import sr_branch

    kind = device.split(":")[0]
    extra = []  # (key, label, environment) of the GRU and kernel settings measured beside the default, bf16 only
    if gru_fp32 and "bf16" in precisions and not (compile_only or profile_only):
        fp32_kinds = ",".join(sorted(sr_branch.float32_gru_devices() | {kind}))
        extra.append(("gru", "fp32", {sr_branch.FP32_GRU_ENV: fp32_kinds}))
    if gru_scan and "bf16" in precisions and not (compile_only or profile_only):
        extra.append(("gru", "scan", {sr_branch.GRU_IMPL_ENV: "scan"}))
    if kernel_sets and "bf16" not in precisions:
        print(json.dumps({"note": "--kernels measures bf16 only: add --precision bf16"}), flush=True)
    if "bf16" in precisions and not (compile_only or profile_only):
        extra += [("kernels", k, KERNEL_SETS[k]) for k in kernel_sets]
    for key, label, env in extra:
        with scoped_environ(env):
            for b in batches:
                try:
                    r = {**measure(variants[0], b, "bf16", device, steps, warmup), key: label}
                except Exception as exc:  # noqa: BLE001
                    r = {"variant": variants[0], "batch": b, "precision": "bf16", key: label,
                         "error": f"{type(exc).__name__}: {exc}"[:300]}
                print(json.dumps(r), flush=True)
                results.append(r)
    if compile_:
        for label, env in [("", {})] + ([("scan", {sr_branch.GRU_IMPL_ENV: "scan"})] if gru_scan else []):
            with scoped_environ(env):
                try:
                    r = measure(variants[0], batches[-1], precisions[0], device, steps, warmup + 3, compile_=True)
                except Exception as exc:  # noqa: BLE001
                    r = {"variant": variants[0], "batch": batches[-1], "precision": precisions[0], "compile": True,
                         "error": f"{type(exc).__name__}: {exc}"[:300]}
            if label:
                r["gru"] = label
            print(json.dumps(r), flush=True)
            results.append(r)
    prof = None
    if do_profile:
        prof = profile(variants[0], batches[-1], precisions[0], device)
        print(prof, flush=True)
    import torch

    dev_name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    summary = "; ".join(f"{r['variant']} b{r['batch']} {r['precision']}"
                        + (f" gru {r['gru']}" if r.get("gru") else "")
                        + (f" kernels {r['kernels']}" if r.get("kernels") else "")
                        + (" compiled" if r.get("compile") else "")
                        + ("" if "error" in r else f" {r['samples_per_s']:.3g}/s {r['peak_gb']:.1f} GB")
                        for r in results)
    record("bench_train", {"results": results, "torch": torch.__version__}, summary, device=dev_name,
           write=not no_record and bool(results))  # a profile alone adds no row


if __name__ == "__main__":
    main()
