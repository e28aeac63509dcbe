"""``glyphsr-demo --out DIR``: the whole toolkit end to end on synthetic data, and a report to read.

Stages, each through the program a user runs (its click command, called in this process) or its library functions:

1. ``textzoom-synth``: a synthetic TextZoom with glyph ground truth (DIR/data), validated (``textzoom-info``'s
   summary) and pictured;
2. GEM (``gem-eval``'s functions) on the test tiers: character and line IoU against the truth, and a picture of the
   masks with their key points and anchors;
3. ``gem-extract`` (Dask) on the training split into the mask store DIR/masks.zarr, pictured;
4. ``sr-train --recipe short``, bounded by steps or minutes, into DIR/run;
5. ``sr-eval`` on the test tiers (Table 1's rows: bicubic, the model, HR; DIR/eval/eval.json), with a picture of
   LR / bicubic / SR / HR and the judge's readings;
6. ``sr-infer`` on inputs of other shapes made here (a long line in tiles, a tall two-line crop, a grayscale JPEG).

Weights shipped with glyphsr (``glyphsr.weights.available()``) are judged and run beside the demo's own run.
DIR/report.md gathers the numbers and pictures. A second run reuses the data, the store, the run and the evaluation
when they are complete and made with the same settings (and says so); ``--overwrite`` makes everything again.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import numpy as np
from PIL import Image
from rich.markup import escape

from glyphsr.data.textzoom import TextZoomLMDB
from glyphsr.pipelines._cli import console, fail, report
from glyphsr.pipelines.textzoom_info import print_summary, summarize

TIERS = ("easy", "medium", "hard")
#: sr-train settings that make the network tiny (the test size): a few channels, two blocks, no pretrained TPG.
TINY_MODEL = ("model.c_sr=8", "model.c_tp=8", "model.n_blocks=2", "model.n_gly=1", "model.tpg_pretrained=false",
              "train.workers=1", "train.log_every=1", "train.warmup_steps=1")


@dataclass(frozen=True)
class Size:
    """How much the demo does: data, training bound and how many records are judged."""

    train: int  # training pairs
    test: int  # test pairs per tier
    eval_limit: int | None  # records per tier that sr-eval judges (None: all)
    val_limit: int  # records per tier that sr-train validates on
    minutes: float | None  # sr-train --minutes
    steps: int | None  # sr-train --steps
    batch: int | None  # sr-train --batch (None: the recipe's)
    settings: tuple[str, ...] = ()  # sr-train --set
    gem_limit: int = 100  # records per tier that GEM is measured on
    rows: int = 3  # picture rows per tier
    workers: int | None = None  # gem-extract / synth processes (None: the machine's cores)


SIZES = {
    # CI's: tens of images, a tiny network, two steps; proves the stages fit together
    "tiny": Size(train=24, test=8, eval_limit=None, val_limit=2, minutes=None, steps=2, batch=4, settings=TINY_MODEL,
                 gem_limit=8, rows=1, workers=1),
    # the short recipe's network (the paper's plus the global skip, without the STN) for 5 minutes on a CPU at
    # batch 16 (155 steps in bf16 on the project's 2 cores with the STN, 110 in fp32; 86 before the CPU speed-ups
    # of 2026-11-27). lr 1e-4, not the
    # recipe's 5e-4 (chosen for batch 256): in 5 minutes 5e-4 took the network from bicubic's 40.7% to 18.4% on 30
    # records per tier, 1e-4 to 34.0% (one run each). No EMA: over so few steps an EMA of 0.995 stays mostly the
    # initial weights, and judging it would double validation and sr-eval. No residual gain either: the demo judges
    # the last weights, and judging four gains on 500 training pairs would take about 90 s more.
    "cpu": Size(train=2000, test=200, eval_limit=100, val_limit=30, minutes=5.0, steps=None, batch=16,
                settings=("train.lr=1e-4", "train.warmup_steps=10", "train.log_every=2", "train.val_every=0",
                          "train.ema=null", "train.calibrate_n=0")),
    # a full short-recipe run on a GPU: a TextZoom-size training set, every test record judged
    "gpu": Size(train=17367, test=500, eval_limit=None, val_limit=500, minutes=10.0, steps=None, batch=None,
                settings=("train.val_every_s=120",), gem_limit=300),
}

#: Figures quoted in the report (not measured by the demo): the full model's training speed on a GPU.
GPU_SPEED = ("the full model trained at 2,652 samples/s alone on one NVIDIA H200 at batch 512 with bfloat16 "
             "autocast (bench_train, 2026-11-28, Triton GRUs, the grid_sample deformable convolution); the shipped "
             "glyphsr-synth weights came from one run of 3.7 minutes of training on such a GPU, shared by three "
             "runs")
GPU_SAMPLES_PER_S = 2652
PAPER_SAMPLES = 200 * 17367  # the paper's recipe: 200 epochs of TextZoom's training set


@dataclass
class StageRecord:
    name: str
    seconds: float = 0.0
    reused: bool = False
    note: str = ""


@dataclass
class Facts:
    """What the report is written from."""

    out: Path
    size_name: str
    size: Size
    seed: int
    device: str
    stages: list[StageRecord] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    gem: dict = field(default_factory=dict)
    store: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    evals: dict = field(default_factory=dict)  # model name -> sr-eval JSON
    infer: dict = field(default_factory=dict)
    shipped: list[str] = field(default_factory=list)
    pictures: dict = field(default_factory=dict)
    wall_s: float = 0.0


class StageFailed(Exception):
    def __init__(self, stage: str, code: int):
        super().__init__(f"{stage} exited with status {code}")
        self.code = code


def call(command: click.Command, prog: str, args: Sequence[str]) -> int:
    """Run a program's click command in this process, as its console script would; return its exit status."""
    args = [str(a) for a in args]
    console.print(f"[dim]$ {escape(prog)} {escape(shlex.join(args))}[/]", soft_wrap=True)
    try:
        command.main(args, prog_name=prog, standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.exceptions.Abort:
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


def _run(command: click.Command, prog: str, args: Sequence[str], ok: Sequence[int] = (0,)) -> int:
    code = call(command, prog, args)
    if code not in ok:
        raise StageFailed(prog, code)
    return code


class _Stage:
    """Times one stage and prints its heading; ``rec.reused`` / ``rec.note`` are filled by the stage."""

    def __init__(self, facts: Facts, number: int, name: str, what: str):
        self.rec = StageRecord(name)
        facts.stages.append(self.rec)
        console.rule(f"[bold]{number}. {name}[/]: {what}")

    def __enter__(self) -> StageRecord:
        self.t0 = time.perf_counter()
        return self.rec

    def __exit__(self, *exc) -> None:
        self.rec.seconds = time.perf_counter() - self.t0


def reuse(what: str, path: Path, how: str = "") -> None:
    console.print(f"[green]reusing[/] {what} in {path}{how} (pass --overwrite to make it again)", soft_wrap=True)


# -- settings of a demo folder ---------------------------------------------------------------------------------------
def identity(size_name: str, size: Size, seed: int) -> dict:
    """The settings that make a demo folder's data, store and run (as JSON reads them back)."""
    ident = {"size": size_name, "seed": seed, **{k: v for k, v in asdict(size).items()
                                                if k not in ("rows", "workers", "gem_limit")}}
    return json.loads(json.dumps(ident))


def check_folder(root: Path, ident: dict, overwrite: bool) -> None:
    """Refuse to mix a demo folder's stages made with other settings (unless --overwrite)."""
    path = root / "demo.json"
    if path.is_file() and not overwrite:
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(ident) if old.get(k) != ident.get(k))
        if diff:
            fail(f"{root} holds a demo made with other settings ({', '.join(f'{k}: {old.get(k)!r}' for k in diff)}"
                 f"); pass --overwrite to make everything again, or another --out")
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ident, indent=1))


# -- stages ----------------------------------------------------------------------------------------------------------
def stage_data(f: Facts, overwrite: bool) -> None:
    from glyphsr.gem.extractor import label_chars
    from glyphsr.gem.metrics import truth_at
    from glyphsr.pipelines import textzoom_synth
    from glyphsr.pipelines.demo_figures import synth_figure

    data = f.out / "data"
    with _Stage(f, 1, "textzoom-synth", "synthetic TextZoom with glyph ground truth") as st:
        manifest = data / "synth.json"
        # data from before the validation tiers (2026-11-28) is made again: train and test come out the same
        if manifest.is_file() and (data / "val" / "hard" / "data.mdb").is_file() and not overwrite:
            st.reused = True
            reuse("the synthetic data", data)
        else:
            # the packaged fonts alone: the same data on any machine, and at seed 0 the test families that the
            # shipped weights never saw either (their data was made so)
            # validation tiers of exactly what sr-train validates on, held out from the test tiers sr-eval judges
            args = ["--out", data, "--train", f.size.train, "--test", f.size.test, "--val", f.size.val_limit,
                    "--seed", f.seed, "--overwrite", "--no-system-fonts"]
            _run(textzoom_synth.main, "textzoom-synth", args + (["--workers", f.size.workers] if f.size.workers
                                                                else []))
        m = json.loads(manifest.read_text())
        bad = 0
        for path in [data / "train"] + [data / sub / t for sub in ("test", "val") for t in TIERS]:
            with TextZoomLMDB(path) as ds:
                s = summarize(str(path), [ds.inspect(i) for i in range(1, len(ds) + 1)], len(ds))
            print_summary(s)
            bad += s["bad"]
        f.data = {"counts": m["counts"], "fonts": m["fonts"], "bad": bad}
        samples = []
        with TextZoomLMDB(data / "test" / "hard") as ds:
            for i in range(1, min(6, len(ds)) + 1):
                rec = ds.read_raw(i)
                hr = np.asarray(rec.hr.resize((128, 32), Image.BICUBIC))
                lr = np.asarray(rec.lr.resize((64, 16), Image.BICUBIC).resize((128, 32), Image.BICUBIC))
                truth = (truth_at(rec.glyph, len(label_chars(rec.label))) if rec.glyph is not None
                         else np.zeros((32, 128), np.uint8))
                samples.append((f"'{rec.label}'", hr, lr, truth))
        png = f.out / "samples-hard.png"
        synth_figure("textzoom-synth: the hard test tier as written (test fonts, unseen in training)",
                     samples).save(png)
        f.pictures["samples"] = png.name
        st.note = f"{sum(m['counts'].values()):,} pairs; {bad} bad records"


def stage_gem(f: Facts) -> None:
    """GEM measured against the truth on each test tier, and the picture of its masks, key points and anchors."""
    from glyphsr.gem.extractor import GEMConfig, GlyphExtractor, label_chars
    from glyphsr.gem.keypoints import anchors
    from glyphsr.gem.metrics import mask_ious, truth_at
    from glyphsr.pipelines.demo_figures import gem_figure
    from glyphsr.pipelines.gem_eval import evaluate_split, load_split

    with _Stage(f, 2, "GEM", "the test tiers' masks against the glyph ground truth (gem-eval)") as st:
        cfg = GEMConfig()
        extractor = GlyphExtractor(cfg)
        rows, picked = {}, []
        for tier in TIERS:
            imgs, labels, glyphs, natives = load_split(f.out / "data" / "test" / tier, f.size.gem_limit)
            rows[tier] = evaluate_split(extractor, imgs, labels, glyphs, natives)
            r = rows[tier]
            report.print(f"{tier}: {r['n']} images, {r['ok']} ok: mean character IoU {r['char_iou']:.3f}, line IoU "
                         f"{r['line_iou']:.3f}, {r['images_per_s']:.0f} images/s")
            k = min(f.size.rows, len(imgs))
            picked += [(tier, imgs[i], labels[i], glyphs[i], natives[i]) for i in range(k)]
        imgs = np.stack([p[1] for p in picked])
        labels = [p[2] for p in picked]
        res = extractor.extract(imgs, labels, native=[p[4] for p in picked])
        anc = anchors(res.keypoints, cfg.anchor_steps, imgs.shape[2], imgs.shape[1])  # (B, L, 2, A, 2)
        truths, ious = [], []
        for i, (_, _, label, glyph, _) in enumerate(picked):
            n = len(label_chars(label))
            truth = truth_at(glyph, n)
            ci, li = mask_ious(res.char[i], res.line[i], truth, n)
            truths.append(truth)
            ious.append((float(ci.mean()) if len(ci) else 0.0, li))
        png = f.out / "gem-test.png"
        gem_figure("GEM (CTC attention + classical segmenter) on the synthetic test tiers", imgs, labels, truths, res,
                   anc, ious, groups=[p[0] for p in picked]).save(png)
        f.pictures["gem"] = png.name
        f.gem = {"tiers": rows, "segmenter": cfg.segmenter, "attention": cfg.attention}
        st.note = ", ".join(f"{t} {r['char_iou']:.3f}/{r['line_iou']:.3f}" for t, r in rows.items())


def stage_store(f: Facts, overwrite: bool) -> None:
    from glyphsr.data.mask_store import STATUS_NAMES, MaskStore, StoreError, check_store_source
    from glyphsr.pipelines import gem_extract
    from glyphsr.pipelines.demo_figures import store_figure

    store = f.out / "masks.zarr"
    train = f.out / "data" / "train"
    with _Stage(f, 3, "gem-extract", "glyph masks of the training split into a mask store (Dask)") as st:
        done = False
        if store.exists() and not overwrite:
            try:
                ms = MaskStore.open(store)
                check_store_source(ms, train, count=len(ms))
                done = bool(ms.meta.get("complete"))
            except StoreError:
                done = False
        if done:
            st.reused = True
            reuse("the mask store", store, " (complete)")
        else:
            args = ["--lmdb", train, "--out", store, "--skip-bad", "--dashboard", ":0"]
            args += (["--workers", f.size.workers] if f.size.workers else []) + (["--overwrite"] if overwrite else [])
            _run(gem_extract.main, "gem-extract", args)
        ms = MaskStore.open(store)
        summary = ms.meta.get("summary", {})
        status = ms.status()
        f.store = {"path": store.name, "n": len(ms), "ok": int((status == 1).sum()), "failed": int((status == 2).sum()),
                   "no_glyph": int((status == 3).sum()), "images_per_s": summary.get("images_per_s"),
                   "seconds": summary.get("seconds")}
        k = min(8, len(ms))
        lmdb = TextZoomLMDB(train)
        labels = [lmdb.read_raw(i + 1).label for i in range(k)]
        png = f.out / "masks-train.png"
        store_figure(f"The mask store {store.name} (gem-extract on the training split): what sr-train reads",
                     ms.root["0"][:k].transpose(0, 2, 3, 1), ms.root["labels/glyphs/0"][:k, 0], ms.root["line"][:k, 0],
                     labels, [STATUS_NAMES[int(s)] for s in status[:k]]).save(png)
        f.pictures["store"] = png.name
        st.note = f"{len(ms):,} images, {f.store['ok']:,} ok"


def _run_finished(run: Path) -> dict | None:
    p = run / "summary.json"
    if not p.is_file() or not (run / "checkpoints" / "last").is_dir():
        return None
    s = json.loads(p.read_text())
    return s if s.get("result", {}).get("finished") else None


def stage_train(f: Facts, overwrite: bool) -> Path:
    from glyphsr.pipelines import sr_train

    run = f.out / "run"
    with _Stage(f, 4, "sr-train", "GlyphSR from the LMDB and the mask store") as st:
        if _run_finished(run) and not overwrite:
            st.reused = True
            reuse("the finished training run", run)
        elif (run / "checkpoints" / "last").is_dir() and (run / "run.json").is_file() and not overwrite:
            console.print(f"continuing the interrupted run in {run}", soft_wrap=True)
            _run(sr_train.main, "sr-train", ["--out", run, "--resume", "--val-limit", f.size.val_limit])
        else:
            s = f.size
            args = ["--masks", f.out / "masks.zarr", "--out", run, "--recipe", "short", "--val-limit", s.val_limit]
            args += (["--minutes", s.minutes] if s.minutes else []) + (["--steps", s.steps] if s.steps else [])
            args += (["--batch", s.batch] if s.batch else []) + [x for kv in s.settings for x in ("--set", kv)]
            _run(sr_train.main, "sr-train", args + (["--overwrite"] if overwrite else []))
        summary = json.loads((run / "summary.json").read_text())
        cfg = (run / "config.yaml").read_text()
        f.train = {"summary": summary, "config": cfg, "curves": "run/curves.png"}
        st.note = (f"{summary['steps']:,} steps, {summary['samples_seen']:,} samples in {summary['train_time_s']:.0f} s"
                   f" ({summary['samples_per_s']:.1f} samples/s)")
    return run / "checkpoints" / "last"


def stage_eval(f: Facts, models: dict[str, Path], overwrite: bool) -> None:
    from glyphsr.pipelines import sr_eval

    with _Stage(f, 5, "sr-eval", "Table 1 on the synthetic test tiers") as st:
        expected = {t: min(f.size.test, f.size.eval_limit or f.size.test) for t in TIERS}
        for name, ckpt in models.items():
            out = f.out / "eval" / f"{_slug(name)}.json"
            weights = ckpt / "model.safetensors"
            if not overwrite and out.is_file() and weights.is_file() and out.stat().st_mtime > weights.stat().st_mtime \
                    and json.loads(out.read_text()).get("sets") == expected:
                st.reused = True
                reuse(f"the evaluation of {name}", out)
            else:
                args = ["--checkpoint", ckpt, "--lmdb", f.out / "data", "--json", out,
                        "--save-sr", f.out / "eval" / f"sr-{_slug(name)}"]
                _run(sr_eval.main, "sr-eval", args + (["--limit", f.size.eval_limit] if f.size.eval_limit else []),
                     ok=(0, 1))
            f.evals[name] = json.loads(out.read_text())
        st.note = "; ".join(f"{m}: {e['average']['rapidocr']['model'] * 100:.1f}% (bicubic "
                            f"{e['average']['rapidocr']['bicubic'] * 100:.1f}%)" for m, e in f.evals.items())


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def stage_infer(f: Facts, models: dict[str, Path]) -> None:
    from glyphsr.pipelines import sr_infer
    from glyphsr.pipelines.demo_shapes import make_shapes

    with _Stage(f, 6, "sr-infer", "images of other shapes (a long line in tiles, a tall crop, grayscale)") as st:
        inputs = make_shapes(f.out / "shapes", f.out / "data", f.seed)
        f.infer = {"inputs": {p.name: {"size": Image.open(p).size, "mode": Image.open(p).mode, "what": what}
                              for p, what in inputs}, "runs": {}}
        for name, ckpt in models.items():
            out = f.out / "infer" / _slug(name)
            _run(sr_infer.main, "sr-infer", [*(p for p, _ in inputs), "--out", out, "--checkpoint", ckpt, "--sheet",
                                             "--recognize", "--overwrite"])
            outputs = {p.name: Image.open(out / f"{p.stem}.png").size for p, _ in inputs}
            f.infer["runs"][name] = {"folder": str(out.relative_to(f.out)), "sheet": str((out / "sheet-001.png")
                                                                                       .relative_to(f.out)),
                                     "outputs": outputs}
        st.note = f"{len(inputs)} inputs x {len(models)} model(s)"


def stage_pictures(f: Facts, models: dict[str, Path]) -> None:
    """LR / bicubic / SR per model / HR for the first records of each tier, with RapidOCR's readings."""
    from glyphsr.data.decode import decode_lmdb
    from glyphsr.pipelines.demo_figures import SRSample, sr_figure
    from glyphsr.sr.evaluation import is_correct

    samples = []
    first = next(iter(f.evals.values()))
    for tier in TIERS:
        k = min(f.size.rows, first["sets"][tier])
        d = decode_lmdb(f.out / "data" / "test" / tier, limit=k, workers=1)
        bad = set(map(int, first["bad_records"].get(tier, {})))
        kept = [i for i in range(1, first["sets"][tier] + len(bad) + 1) if i not in bad]
        for j, idx in enumerate(kept[:k]):
            label = d.labels[idx - 1]
            readings = {}
            for row in ("bicubic", "hr"):
                text = first["readings"]["rapidocr"][tier][row][j]
                readings[row] = (text, bool(is_correct([text], [label])[0]))
            sr = {}
            for name in models:
                e = f.evals[name]
                text = e["readings"]["rapidocr"][tier]["model"][j]
                readings[name] = (text, bool(is_correct([text], [label])[0]))
                sr[name] = np.asarray(Image.open(f.out / "eval" / f"sr-{_slug(name)}" / tier / f"{idx:09d}.png")
                                      .convert("RGB"))
            lr = d.lr[idx - 1].transpose(1, 2, 0)
            bic = np.asarray(Image.fromarray(lr).resize((128, 32), Image.BICUBIC))
            samples.append(SRSample(tier, idx, label, lr, bic, d.hr[idx - 1].transpose(1, 2, 0), sr, readings))
    png = f.out / "sr-test.png"
    legend = ["judge: RapidOCR (PP-OCRv4), which took no part in training; right = exact match of the lowercase "
              "alphanumeric label (sr-eval's rule)"]
    sr_figure("Super-resolution on the synthetic test tiers: the first records of each tier", samples, list(models),
              "RapidOCR", legend=legend).save(png)
    f.pictures["sr"] = png.name


# -- the command -----------------------------------------------------------------------------------------------------
def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({os.cpu_count()} cores)"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", default="glyphsr-demo", show_default=True, type=click.Path(file_okay=False),
              help="Working folder for everything the demo writes; DIR/report.md is the report.")
@click.option("--size", "size_name", type=click.Choice(["auto", "tiny", "cpu", "gpu"]), default="auto",
              show_default=True,
              help="tiny: 24 training and 8 test images per tier, a tiny network, 2 training steps (under a minute; "
                   "what the tests run). cpu: 2,000 training and 200 test images per tier, the short recipe's "
                   "network for 5 minutes at batch 16 and lr 1e-4, 100 records per tier judged (7 minutes on the "
                   "project's 2 cores). gpu: 17,367 "
                   "training (TextZoom's size) and 500 test images per tier, a 10-minute short-recipe run, every "
                   "record judged. auto: gpu when CUDA is visible, else cpu.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Train for this long instead of the size's bound.")
@click.option("--train", "n_train", default=None, type=click.IntRange(min=1),
              help="Training pairs (default: the size's).")
@click.option("--test", "n_test", default=None, type=click.IntRange(min=1),
              help="Test pairs per tier (default: the size's).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Processes for synthesis and gem-extract.")
@click.option("--overwrite", is_flag=True, help="Make every stage again, replacing an earlier demo's files in OUT.")
def main(out: str, size_name: str, minutes: float | None, n_train: int | None, n_test: int | None, seed: int,
         workers: int | None, overwrite: bool) -> None:
    """Run the whole toolkit on built-in synthetic data and write OUT/report.md: textzoom-synth, GEM measured
    against the truth, gem-extract, sr-train, sr-eval (Table 1) and sr-infer, with pictures of each.

    Running it again reuses the finished stages (data, mask store, training run, evaluation) and says so.
    Exit status: 0 done, 1 a stage failed (named), 2 bad arguments."""
    t0 = time.perf_counter()
    if size_name == "auto":
        import torch

        size_name = "gpu" if torch.cuda.is_available() else "cpu"
    size = SIZES[size_name]
    changes = {k: v for k, v in (("train", n_train), ("test", n_test), ("workers", workers)) if v is not None}
    if minutes is not None:
        changes.update(minutes=minutes, steps=None)
    if changes:
        from dataclasses import replace

        size = replace(size, **changes)
    root = Path(out)
    check_folder(root, identity(size_name, size, seed), overwrite)
    from glyphsr.weights import available

    shipped = available()
    f = Facts(out=root, size_name=size_name, size=size, seed=seed, device=_device(), shipped=list(shipped))
    try:
        stage_data(f, overwrite)
        stage_gem(f)
        stage_store(f, overwrite)
        last = stage_train(f, overwrite)
        models = {"this demo's run": last, **{f"shipped {n}": p for n, p in shipped.items()}}
        stage_eval(f, models, overwrite)
        stage_infer(f, models)
        with _Stage(f, 7, "pictures", "LR / bicubic / SR / HR with the judge's readings") as st:
            stage_pictures(f, models)
            st.note = ", ".join(f.pictures.values())
        from glyphsr.pipelines.demo_report import write_report

        f.wall_s = time.perf_counter() - t0
        write_report(f)
    except StageFailed as exc:
        console.print(f"[bold red]error:[/] {exc}; the stages before it are kept in {root}: fix the cause and run "
                      "the same command again", soft_wrap=True)
        sys.exit(1)
    _print_stages(f)
    report.print(f"report: {root / 'report.md'}  (pictures beside it; wall time {time.perf_counter() - t0:.0f} s)",
                 soft_wrap=True)
    sys.exit(1 if f.data.get("bad") else 0)


def _print_stages(f: Facts) -> None:
    from rich.table import Table

    t = Table(title=f"glyphsr-demo ({f.size_name}) in {f.out}", show_edge=False)
    for c in ("stage", "seconds", "", "result"):
        t.add_column(c, justify="right" if c == "seconds" else "left")
    for s in f.stages:
        t.add_row(s.name, f"{s.seconds:.1f}", "reused" if s.reused else "", s.note)
    report.print(t)


if __name__ == "__main__":
    main()
