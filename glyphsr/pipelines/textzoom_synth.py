"""``textzoom-synth``: write a synthetic TextZoom (train + test easy/medium/hard) with glyph ground truth."""

from __future__ import annotations

import json
import time

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from glyphsr.data.synth.generator import generate
from glyphsr.pipelines._cli import console, fail


def run_synth(out: str, n_train: int, n_test: int, seed: int, workers: int | None, overwrite: bool,
              quiet: bool = False, system_fonts: bool = True, n_val: int = 0) -> dict:
    columns = (TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet) as bar:
        tasks: dict[str, int] = {}
        started: dict[str, float] = {}

        def progress(split: str, done: int, total: int) -> None:
            if split not in tasks:
                tasks[split] = bar.add_task(split, total=total, rate="")
                started[split] = time.perf_counter()
            dt = max(time.perf_counter() - started[split], 1e-9)
            bar.update(tasks[split], completed=done, rate=f"{done / dt:,.0f}/s")

        try:
            return generate(out, n_train, n_test, seed, workers=workers, overwrite=overwrite, progress=progress,
                            system_fonts=system_fonts, n_val=n_val)
        except (FileExistsError, ValueError, RuntimeError) as exc:
            fail(str(exc))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--train", "n_train", default=1000, show_default=True, type=click.IntRange(min=0),
              help="Training pairs (OUT/train).")
@click.option("--test", "n_test", default=300, show_default=True, type=click.IntRange(min=0),
              help="Test pairs per tier (OUT/test/easy, medium, hard).")
@click.option("--val", "n_val", default=200, show_default=True, type=click.IntRange(min=0),
              help="Validation pairs per tier (OUT/val/easy, medium, hard), drawn like the test tiers but held out "
                   "from them: sr-train picks its checkpoints on these. 0: none (sr-train then validates on the "
                   "test tiers).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed: same seed, same data.")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Processes [default: all cores].")
@click.option("--overwrite", is_flag=True, help="Replace existing LMDBs in OUT (and remove its validation tiers "
              "when --val 0).")
@click.option("--system-fonts/--no-system-fonts", default=True, show_default=True,
              help="Also draw the fonts installed on this machine (/usr/share/fonts, /usr/local/share/fonts). "
                   "--no-system-fonts: only the fonts glyphsr's packages ship, so the same seed splits the same font "
                   "families into train and test on any machine (the shipped weights' data was made so).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(out: str, n_train: int, n_test: int, n_val: int, seed: int, workers: int | None, overwrite: bool,
         system_fonts: bool, quiet: bool) -> None:
    """Write a synthetic TextZoom into OUT: TextZoom-format LMDBs of LR/HR pairs, each with a per-character
    ground-truth glyph map (key glyph_hr-%09d). Train and test use disjoint font families; the validation tiers
    are drawn like the test tiers, from their own random streams."""
    manifest = run_synth(out, n_train, n_test, seed, workers, overwrite, quiet, system_fonts, n_val)
    total = sum(manifest["counts"].values())
    console.print(f"wrote {total:,} pairs to {out} in {manifest['seconds']:.1f} s "
                  f"({total / max(manifest['seconds'], 1e-9):,.0f} pairs/s); test fonts: "
                  f"{', '.join(manifest['fonts']['test'])}")
    if quiet:
        click.echo(json.dumps(manifest["counts"]))


if __name__ == "__main__":
    main()
