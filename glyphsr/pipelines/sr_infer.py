"""``sr-infer``: super-resolve your own text images, whatever their size.

    sr-infer crops/ --out sr/                                      # every image in crops/, the shipped weights
    sr-infer line.jpg 'scans/*.png' --out sr/ --sheet --recognize  # with pictures and RapidOCR's readings
    sr-infer --checkpoint runs/glyphsr-x/checkpoints/best crops/ --out sr/ --mode tiles --ema

Inputs are image files (any format PIL reads), folders (their images, not their subfolders: files with an
extension PIL knows) and glob patterns. Each input gives ``OUT/NAME.png`` (NAME: the input's name without its
extension; inputs that share a name keep their extension in it: ``a_jpg.png``, ``a_png.png``). ``--mode``: see
``glyphsr.sr.infer`` (``fit`` gives 128x32, ``tiles`` twice the input resized to height 16, ``auto`` tiles images
wider than 8:1). ``--sheet`` draws LR, bicubic and SR one above the other: ``OUT/NAME.sheet.png`` for one input,
``OUT/sheet-001.png``, ... (12 inputs each) for several; a run where an input's output would take a sheet's name
(an input ``sheet-001.jpg``) is refused rather than one overwriting the other. ``--recognize`` adds RapidOCR's
readings to the sheets and prints them. ``--device``: cpu, cuda or cuda:N (:func:`glyphsr.sr.runtime.resolve_device`).

Exit status: 0 every input super-resolved; 1 some inputs could not be read (each is listed with the reason and
skipped; 0 with ``--skip-bad``); 2 bad arguments or unusable input found before any work (a missing path, a folder
without images, no usable checkpoint, an unknown or missing device, an OUT that is not a folder, outputs that
already exist without ``--overwrite``, an output named like a sheet); 130 interrupted.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from glyphsr.pipelines._cli import check_output_path, console, fail, report
from glyphsr.sr.runtime import CPU_BATCH, resolve_device

EXIT_SKIPPED = 1
SHEET_PAGE = 12  # inputs per contact sheet
DEFAULT_BATCH = {"cpu": CPU_BATCH, "cuda": 512}  # windows per forward pass (glyphsr.sr.runtime.CPU_BATCH: measured)


class InputError(ValueError):
    """Inputs or outputs that cannot be used; the CLI exits 2 with the message."""


def image_extensions() -> set[str]:
    """File extensions (lower case, with the dot) of the formats PIL can open."""
    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def collect_inputs(specs: Sequence[str]) -> tuple[list[Path], int]:
    """Files named by ``specs`` (files, folders, glob patterns), in order, each once; and how many files in the
    folders were left out for not having an image extension. Raises :class:`InputError` for a missing path, a
    folder without images, or a pattern matching nothing."""
    exts = image_extensions()
    files: list[Path] = []
    ignored = 0

    def folder(d: Path, required: bool) -> None:
        nonlocal ignored
        entries = sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith("."))
        images = [f for f in entries if f.suffix.lower() in exts]
        ignored += len(entries) - len(images)
        if required and not images:
            raise InputError(f"{d}: no images in this folder ({len(entries)} other file(s); subfolders are not "
                             "searched)")
        files.extend(images)

    for k, spec in enumerate(specs, start=1):
        if not spec:  # Path("") is the current folder: never what an empty argument meant
            raise InputError(f"input {k} is an empty string: give a file, a folder or a glob pattern")
        p = Path(spec)
        if p.is_dir():
            folder(p, required=True)
        elif p.exists():
            files.append(p)
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(spec))
            if not matches:
                raise InputError(f"{spec}: the pattern matches nothing")
            for m in map(Path, matches):
                if m.is_dir():
                    folder(m, required=False)
                else:
                    files.append(m)
        else:
            raise InputError(f"{spec}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique, ignored


def output_names(files: Sequence[Path]) -> list[str]:
    """``NAME.png`` per input; inputs sharing a name keep their extension (``a_jpg.png``). Raises
    :class:`InputError` when two inputs would still write the same file (same name in two folders)."""
    stems = Counter(f.stem for f in files)
    names = [f"{f.stem}.png" if stems[f.stem] == 1 else f"{f.stem}_{f.suffix.lstrip('.').lower() or 'none'}.png"
             for f in files]
    clash = [n for n, c in Counter(names).items() if c > 1]
    if clash:
        which = [str(f) for f, n in zip(files, names) if n == clash[0]]
        raise InputError(f"{len(clash)} output name(s) would be written by more than one input, e.g. {clash[0]} by "
                         f"{', '.join(which)}: give those inputs separate runs with their own --out")
    return names


def sheet_names(names: Sequence[str]) -> list[str]:
    """The sheet files of a run: NAME.sheet.png for one input, sheet-001.png, ... for several."""
    if len(names) == 1:
        return [f"{Path(names[0]).stem}.sheet.png"]
    return [f"sheet-{k + 1:03d}.png" for k in range((len(names) + SHEET_PAGE - 1) // SHEET_PAGE)]


def resolve_checkpoint(spec: str | None) -> Path:
    """A checkpoint folder (or .safetensors file) or the name of shipped weights -> its path. Raises
    FileNotFoundError with what to do."""
    from glyphsr.weights import DEFAULT, available, shipped_path

    if spec is None:
        try:
            return shipped_path(DEFAULT)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"no --checkpoint given, and {exc}") from None
    p = Path(spec)
    if p.exists():
        return p
    if spec in available():
        return shipped_path(spec)
    shipped = ", ".join(available()) or "none in this copy of glyphsr"
    raise FileNotFoundError(f"--checkpoint {spec}: no such checkpoint folder, and no shipped weights of that name "
                            f"(shipped: {shipped})")


@dataclass
class Plan:
    """What a run reads and writes, checked before any work."""

    files: list[Path]
    targets: list[Path]  # one output per file
    sheets: list[Path]  # sheet files, in the order they are filled
    ignored: int  # non-image files in the input folders


def plan_run(inputs: Sequence[str], out: Path, sheet: bool, overwrite: bool) -> Plan:
    """Inputs and outputs of a run; raises :class:`InputError` for anything that must stop it."""
    check_output_path(out, "--out", folder=True)
    files, ignored = collect_inputs(inputs)
    names = output_names(files)
    targets = [out / n for n in names]
    sheets = [out / n for n in sheet_names(names)] if sheet else []
    by_name = {t.name: f for f, t in zip(files, targets)}
    taken = [s for s in sheets if s.name in by_name]
    if taken:  # refused rather than renamed: OUT/NAME.png is what a user looks for, and so is sheet-001.png
        raise InputError(f"{taken[0]} would be both the output of {by_name[taken[0].name]} and a --sheet page: "
                         "rename that input, give it a separate run, or leave out --sheet")
    own = [f for f, t in zip(files, targets) if t.resolve() == f.resolve()]
    if own:
        raise InputError(f"{own[0]} would be replaced by its own output: choose another --out")
    read = {f.resolve(): f for f in files}
    eaten = [s for s in sheets if s.resolve() in read]
    if eaten:
        raise InputError(f"{read[eaten[0].resolve()]} would be replaced by the sheet {eaten[0]}: choose another --out")
    folders = [t for t in targets + sheets if t.is_dir()]
    if folders:
        raise InputError(f"{folders[0]}: a folder is in the way of this output (--overwrite replaces files only): "
                         "move it, or choose another --out")
    existing = [t for t in targets + sheets if t.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise InputError(f"{len(existing)} output(s) exist: {', '.join(map(str, existing[:5]))}{more}; pass "
                         "--overwrite to replace them, or another --out")
    return Plan(files, targets, sheets, ignored)


@dataclass
class Result:
    done: int = 0
    modes: Counter = field(default_factory=Counter)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (input, reason)
    readings: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (input name, {row: text})
    sheets: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def _save_png(img: Image.Image, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        img.save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None


def _bicubic(lr_rgb: np.ndarray) -> np.ndarray:
    import torch

    from glyphsr.sr.evaluation import bicubic_up, to_uint8

    return to_uint8(bicubic_up(torch.from_numpy(lr_rgb).permute(2, 0, 1)[None].float() / 255))[0]


def _title(path: Path, img) -> str:
    (w, h), (lw, lh), (ow, oh) = img.source_size, (img.width, 16), img.out_size
    return f"{path.name}   {w}x{h} {img.source_mode}   {img.mode}: {lw}x{lh} -> {ow}x{oh}"


def run(plan: Plan, sr_fn, *, mode: str, device, batch: int, autocast: bool, judge=None, draw: bool = False,
        threads: int = 4) -> Result:
    """Load (``threads`` decoding threads), super-resolve and write every input of ``plan`` under a progress bar;
    pages of :data:`SHEET_PAGE` results are read by ``judge`` and drawn (``draw``) as they fill."""
    from glyphsr.sr.infer import iter_loaded, super_resolve_images
    from glyphsr.sr.sheet import SheetEntry, render_sheet

    res = Result()
    page: list = []

    def flush() -> None:
        if not page:
            return
        entries = [SheetEntry(_title(plan.files[i], img), img.rgb, _bicubic(img.rgb), sr) for i, img, sr in page]
        if judge is not None:
            texts = judge.recognize([e.lr for e in entries] + [e.bicubic for e in entries] + [e.sr for e in entries])
            n = len(entries)
            for k, (e, (i, _, _)) in enumerate(zip(entries, page)):
                e.readings = {"lr": texts[k], "bicubic": texts[n + k], "sr": texts[2 * n + k]}
                res.readings.append((plan.files[i].name, e.readings))
        if draw:
            path = plan.sheets[len(res.sheets)]
            _save_png(render_sheet(entries, judge.name if judge else None), path)
            res.sheets.append(path)
        page.clear()

    columns = (TextColumn("[bold]sr-infer[/]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} img/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    t0 = time.perf_counter()
    with Progress(*columns, console=console) as bar, ThreadPoolExecutor(threads) as writer:
        task = bar.add_task("images", total=len(plan.files), rate="-")
        writes: deque = deque()

        def advance() -> None:
            bar.advance(task)
            bar.update(task, rate=f"{bar.tasks[0].completed / max(time.perf_counter() - t0, 1e-9):.1f}")

        def loaded():
            for i, (path, img) in enumerate(iter_loaded(plan.files, mode, workers=threads)):
                if isinstance(img, Exception):
                    res.skipped.append((path, str(img)))
                    advance()
                    continue
                yield (i, img), img

        for (i, img), sr in super_resolve_images(sr_fn, loaded(), device=device, batch=batch, autocast=autocast):
            writes.append(writer.submit(_save_png, Image.fromarray(sr), plan.targets[i]))
            while writes and (writes[0].done() or len(writes) > 4 * threads):
                writes.popleft().result()
                res.done += 1
            res.modes[img.mode] += 1
            if draw or judge is not None:
                page.append((i, img, sr))
                if len(page) == SHEET_PAGE:
                    flush()
            advance()
        while writes:
            writes.popleft().result()
            res.done += 1
        flush()
    res.seconds = time.perf_counter() - t0
    return res


def print_report(plan: Plan, res: Result, out: Path, judge) -> None:
    if res.readings:
        t = Table(title=f"readings ({judge.name})")
        for col in ("input", "LR", "bicubic", "SR"):
            t.add_column(col)
        for name, r in res.readings:
            t.add_row(name, r["lr"], r["bicubic"], r["sr"])
        report.print(t)
    split = ", ".join(f"{m} {res.modes[m]}" for m in ("fit", "tiles") if res.modes[m])
    sheets = f"; sheets: {', '.join(map(str, res.sheets))}" if res.sheets else ""
    report.print(f"super-resolved {res.done:,} of {len(plan.files):,} image(s) ({split or 'none'}) into {out} in "
                 f"{res.seconds:.1f} s ({res.done / max(res.seconds, 1e-9):.1f} images/s){sheets}", soft_wrap=True)
    if res.skipped:
        report.print(f"[red]skipped {len(res.skipped)} input(s)[/]:", soft_wrap=True)
        for path, why in res.skipped:
            report.print(f"  {path}: {why}", soft_wrap=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the super-resolved PNGs (made when missing).")
@click.option("--checkpoint", default=None,
              help="A checkpoint folder sr-train wrote (e.g. runs/NAME/checkpoints/best) or the name of shipped "
                   "weights (default: the shipped glyphsr-synth).")
@click.option("--mode", type=click.Choice(["auto", "fit", "tiles"]), default="auto", show_default=True,
              help="fit: TextZoom's 64x16 -> 128x32; tiles: height 16, overlapping 64-wide windows, output twice "
                   "that; auto: tiles when wider than 8:1.")
@click.option("--sheet", is_flag=True,
              help="Also draw LR, bicubic and SR one above the other: OUT/NAME.sheet.png for one input, "
                   "OUT/sheet-001.png, ... for several. A run where an input's output would take a sheet's name "
                   "(an input sheet-001.jpg) is refused.")
@click.option("--recognize", is_flag=True, help="Read LR, bicubic and SR with RapidOCR: printed, and on the sheets.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when there is one).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bfloat16 autocast where the device computes it natively (CUDA; CPUs with AVX512-BF16 "
                   "or AMX), float32 elsewhere.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help=f"Windows per forward pass, from one image or many (default {CPU_BATCH} on the CPU, 512 on CUDA).")
@click.option("--ema", is_flag=True, help="Use the checkpoint's EMA weights when it has them.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist in --out.")
@click.option("--skip-bad", is_flag=True, help="Exit 0 even when some inputs could not be read.")
def main(inputs: tuple[str, ...], out: str, checkpoint: str | None, mode: str, sheet: bool, recognize: bool,
         device: str | None, precision: str, batch: int | None, ema: bool, overwrite: bool, skip_bad: bool) -> None:
    """Super-resolve text images (files, folders, glob patterns) with GlyphSR into --out: OUT/NAME.png per input.

    \b
    Exit status: 0 every input done; 1 some inputs unreadable or empty (listed, skipped; 0 with --skip-bad);
    2 bad arguments found before any work (missing path, folder without images, no usable checkpoint, unknown
    device, OUT not a folder, outputs that exist without --overwrite, an output named like a sheet); 130
    interrupted.
    """
    if not out:  # Path("") is the current folder
        fail("--out is an empty string: give the folder for the outputs")
    out_dir = Path(out)
    try:  # everything that can be refused is checked before the model loads
        plan = plan_run(inputs, out_dir, sheet, overwrite)
        ckpt = resolve_checkpoint(checkpoint)
        dev = resolve_device(device)
    except (ValueError, FileNotFoundError) as exc:  # InputError and resolve_device's refusals
        fail(str(exc))

    from glyphsr.sr.checkpoint import CheckpointError, has_ema, load_model
    from glyphsr.sr.runtime import sr_function, use_bf16

    bf16 = use_bf16(precision, dev)
    batch = batch or DEFAULT_BATCH.get(dev.type, 8)
    use_ema = ema and has_ema(ckpt)
    try:
        model, meta = load_model(ckpt, dev, ema=use_ema)
        out_dir.mkdir(parents=True, exist_ok=True)
    except (CheckpointError, OSError) as exc:
        fail(str(exc))
    judge = None
    if recognize:
        from glyphsr.recognizers.rapidocr import RapidOCRRecognizer

        judge = RapidOCRRecognizer()
    weights = "EMA" if use_ema else "model" + (" (the checkpoint has no EMA weights)" if ema else "")
    left_out = f" ({plan.ignored} non-image file(s) in the folders left out)" if plan.ignored else ""
    console.print(f"{len(plan.files):,} input(s){left_out}; checkpoint {ckpt} (step {meta.get('step', '?')}, "
                  f"{weights} weights) on {dev}, {'bfloat16' if bf16 else 'float32'}, {batch} windows per batch, "
                  f"mode {mode}", soft_wrap=True)
    if not use_ema and meta.get("read_best") == "ema" and has_ema(ckpt):
        console.print("[yellow]this checkpoint's EMA weights read best at its validation: add --ema to use them[/]")
    try:
        res = run(plan, sr_function(model, dev), mode=mode, device=dev, batch=batch, autocast=bf16, judge=judge,
                  draw=sheet, threads=min(4, os.cpu_count() or 1))
    except OSError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print(f"\n[yellow]interrupted[/]: the outputs written so far in {out_dir} are complete",
                      soft_wrap=True)
        sys.exit(130)
    print_report(plan, res, out_dir, judge)
    sys.exit(EXIT_SKIPPED if res.skipped and not skip_bad else 0)


if __name__ == "__main__":
    main()
