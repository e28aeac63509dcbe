"""Where the training gradient comes from: each loss term's gradient norm over the network's parameters, grouped by
top-level module (tpg, tp_transformer, head, blocks, gpm, gfm, up, tail, out), at given weights, on the first N
training pairs of a mask store, in training mode.

    python -m bench.grad_terms --masks masks.zarr --weights glyphsr-synth --set loss.text_focus=crnn
    python -m bench.grad_terms --masks masks.zarr --weights runs/x/checkpoints/best --ema --n 64

Adam moves each parameter in the direction its gradient points, whatever the gradient's overall scale (so the
short recipe's clipping at 1.0 matters little): the table shows which term's gradient dominates each module, and so
which term steers it. A diagnostic: it prints a table and records nothing.
"""

from __future__ import annotations

import collections

import click


def term_norms(trainer, n: int) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(loss values, {term: {module: gradient norm}}) on the trainer's first ``n`` samples; "total" included."""
    import torch

    from glyphsr.sr.losses.text_focus import CRNNTextFocus

    trainer.net.train()
    trainer.crit.train()
    b = trainer.data.batch(torch.arange(min(n, len(trainer.data)), device=trainer.device))
    tf = {}
    if isinstance(trainer.crit.text_focus, CRNNTextFocus):
        tf["ctc_targets"] = b["ctc"]
        if "tf_target" in b:
            tf["target_p"] = b["tf_target"]
    with torch.autocast(trainer.device.type, dtype=torch.bfloat16, enabled=trainer.autocast):
        out = trainer.net(b["lr"])
        terms = trainer.crit(out, b["hr"], b.get("labels"), b["line"], b["char"], cls_t=b["cls"],
                             glyph_valid=b["glyph_ok"], **tf)
    params = [(name, p) for name, p in trainer.model.named_parameters() if p.requires_grad]
    norms = {}
    for key in [k for k in terms if k != "total" and terms[k].requires_grad] + ["total"]:
        grads = torch.autograd.grad(terms[key], [p for _, p in params], retain_graph=True, allow_unused=True)
        sq: dict[str, float] = collections.defaultdict(float)
        for (name, _), g in zip(params, grads):
            if g is not None:
                sq[name.split(".")[0]] += float(g.float().pow(2).sum())
        norms[key] = {m: v ** 0.5 for m, v in sq.items()}
    return {k: float(v.detach()) for k, v in terms.items()}, norms


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--masks", "store", required=True, type=click.Path(exists=True), help="Mask store (gem-extract's).")
@click.option("--lmdb", default=None, type=click.Path(), help="Training LMDB (default: the store's source).")
@click.option("--weights", "weights", multiple=True, required=True,
              help="Shipped weights' name or a checkpoint folder; repeat to compare.")
@click.option("--ema", is_flag=True, help="Take the checkpoints' EMA weights.")
@click.option("--recipe", type=click.Choice(["paper", "short"]), default="short", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help="Override one setting.")
@click.option("--n", default=64, show_default=True, help="Training pairs in the one batch measured.")
@click.option("--device", default="cpu", show_default=True)
def main(store, lmdb, weights, ema, recipe, overrides, n, device) -> None:
    import tempfile
    from pathlib import Path

    from glyphsr.data.mask_store import StoreError
    from glyphsr.pipelines.sr_train import _weights_path, load_training_data
    from glyphsr.sr.checkpoint import CheckpointError, read_weights
    from glyphsr.sr.train.config import resolve
    from glyphsr.sr.train.loop import Trainer

    try:  # every input checked before the data is decoded
        states = {w: read_weights(_weights_path(w), "ema" if ema else "model")[0] for w in weights}
        cfg = resolve(recipe, None, [f"train.batch={n}", *overrides])
        data, _ = load_training_data(store, lmdb, n, None, "ok")
    except (FileNotFoundError, CheckpointError, StoreError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for w, state in states.items():
        trainer = Trainer(cfg, data, Path(tempfile.mkdtemp(prefix="grad-terms-")), device, init_weights=state)
        values, norms = term_norms(trainer, n)
        modules = sorted({m for per in norms.values() for m in per})
        click.echo(f"\n{w}{' (EMA)' if ema else ''}: {n} pairs, "
                   + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
        click.echo(f"{'term':8s} {'norm':>8s}  " + " ".join(f"{m:>14s}" for m in modules))
        for key, per in norms.items():
            total = sum(v * v for v in per.values()) ** 0.5
            click.echo(f"{key:8s} {total:8.4f}  " + " ".join(f"{per.get(m, 0.0):14.4f}" for m in modules))


if __name__ == "__main__":
    main()
