"""``textzoom-info PATH``: inspect and validate a TextZoom-format LMDB.

Exit status: 0 when every record reads, 1 when some are bad, 2 when PATH is not a TextZoom LMDB or the LMDB itself
is damaged (a truncated copy, corrupted pages).
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import click
import numpy as np
from rich.progress import Progress
from rich.table import Table

from glyphsr.data.labels import MAX_CHARS
from glyphsr.data.textzoom import NotTextZoomError, RecordInfo, TextZoomLMDB
from glyphsr.pipelines._cli import BadInput, console, report

SHOW_BAD = 100


def _size_stats(sizes: list[tuple[int, int]]) -> dict:
    if not sizes:
        return {}
    a = np.array(sizes)
    return {
        "width": {"min": int(a[:, 0].min()), "median": float(np.median(a[:, 0])), "max": int(a[:, 0].max())},
        "height": {"min": int(a[:, 1].min()), "median": float(np.median(a[:, 1])), "max": int(a[:, 1].max())},
    }


def summarize(path: str, infos: list[RecordInfo], num_samples: int) -> dict:
    good = [r for r in infos if r.reason is None]
    bad = [r for r in infos if r.reason is not None]
    lengths = Counter(min(r.label_len, MAX_CHARS + 1) for r in good)
    hist = {(f"{k}" if k <= MAX_CHARS else f">{MAX_CHARS}"): lengths[k] for k in sorted(lengths)}
    return {
        "path": path,
        "num_samples": num_samples,
        "good": len(good),
        "bad": len(bad),
        "label_length_histogram": hist,
        "hr_size": _size_stats([r.hr_size for r in good]),
        "lr_size": _size_stats([r.lr_size for r in good]),
        "formats": {"hr": dict(Counter(r.hr_format for r in good)), "lr": dict(Counter(r.lr_format for r in good))},
        "with_glyph_truth": sum(r.has_glyph for r in good),
        "bad_records": [{"index": r.index, "reason": r.reason} for r in bad],
    }


def print_summary(s: dict) -> None:
    """The human-readable report of :func:`summarize`'s dict, on stdout."""
    report.print(f"[bold]{s['path']}[/]: {s['num_samples']:,} samples, {s['good']:,} good, "
                  f"{'[red]' if s['bad'] else ''}{s['bad']:,} bad{'[/]' if s['bad'] else ''}, "
                  f"{s['with_glyph_truth']:,} with glyph ground truth", soft_wrap=True)
    if s["good"]:
        t = Table(title="label length (characters after the 'all' filter)", show_edge=False)
        t.add_column("length", justify="right")
        t.add_column("samples", justify="right")
        t.add_column("")
        top = max(s["label_length_histogram"].values())
        for k, v in s["label_length_histogram"].items():
            t.add_row(k, f"{v:,}", "#" * max(1, round(30 * v / top)))
        report.print(t)
        t = Table(title="native image sizes (pixels)", show_edge=False)
        for c in ("image", "width min", "median", "max", "height min", "median", "max", "formats"):
            t.add_column(c, justify="right")
        for name in ("hr", "lr"):
            st = s[f"{name}_size"]
            fm = ", ".join(f"{k} {v:,}" for k, v in s["formats"][name].items())
            t.add_row(name.upper(), str(st["width"]["min"]), f"{st['width']['median']:g}", str(st["width"]["max"]),
                      str(st["height"]["min"]), f"{st['height']['median']:g}", str(st["height"]["max"]), fm)
        report.print(t)
    if s["bad"]:
        report.print(f"[red]bad records ({s['bad']:,}):[/]")
        for r in s["bad_records"][:SHOW_BAD]:
            report.print(f"  record {r['index']}: {r['reason']}", markup=False)
        if s["bad"] > SHOW_BAD:
            report.print(f"  ... and {s['bad'] - SHOW_BAD:,} more (--json lists them all)")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def main(path: str, as_json: bool) -> None:
    """Inspect and validate the TextZoom-format LMDB at PATH: sample count, label lengths, native image sizes,
    and every bad record with its index and reason.

    Exit status: 0 all records good, 1 some records bad, 2 PATH is not a TextZoom LMDB or is damaged (truncated,
    corrupted)."""
    infos = []
    try:
        ds = TextZoomLMDB(path)
        with Progress(console=console, transient=True, disable=as_json or len(ds) < 2000) as bar:
            task = bar.add_task("reading", total=len(ds))
            for i in range(1, len(ds) + 1):
                infos.append(ds.inspect(i))  # raises NotTextZoomError when the file, not a record, is bad
                if i % 256 == 0:
                    bar.update(task, completed=i)
    except NotTextZoomError as exc:
        if as_json:
            click.echo(json.dumps({"path": path, "error": exc.reason}))
        raise BadInput(str(exc)) from None
    s = summarize(path, infos, len(ds))
    if as_json:
        click.echo(json.dumps(s, indent=2))
    else:
        print_summary(s)
    sys.exit(1 if s["bad"] else 0)


if __name__ == "__main__":
    main()
