"""Training configuration: the model's ``SRConfig``, the loss's ``LossConfig`` and a ``TrainConfig``, one frozen
``RunConfig`` that a YAML file and ``KEY=VALUE`` overrides build, saved resolved in the run folder and in every
checkpoint (the network is rebuilt from the checkpoint, never from the command line).

Keys are dotted: ``model.residual=true``, ``loss.w_hog=0.05``, ``train.lr=2e-3``; values are YAML scalars or lists.

Recipes (``RECIPES``, ``--recipe NAME``): ``paper`` is the paper's (Adam 1e-3, batch 48, 200 epochs, 5 warm-up
epochs then cosine; the paper's network, no global skip). ``short`` is for runs of minutes: the same network and
loss plus the global skip (``model.residual``) and without the STN, batch 256, lr 5e-4 after 100 warm-up steps,
EMA 0.995. The README's training section gives the measurements behind it: in the first GPU session (2.5 minutes per
run, four runs sharing one H200) only runs with the skip kept readable output, lr 2e-3 after 200 warm-up steps
wrecked the bicubic start while the rate rose, and the EMA of the weights read 4x better than the weights
themselves; lr 5e-4 and the EMA on by default follow from that and are not measured yet. The STN (which runs in
training only, as in TPGSR) warped the input early in 3-minute CPU runs (a mean change of 0.13 to the LR images
after 112 steps at lr up to 1e-4), and the difference the blocks learned on warped inputs lowered PSNR below
bicubic's at inference; without it the same pixel-loss run rose above bicubic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from glyphsr.sr.losses import LossConfig
from glyphsr.sr.modeling import SRConfig

PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    steps: int | None = None  # overrides epochs when set
    time_budget_s: float | None = None  # stop after this much training time; the schedule follows the clock then
    batch: int = 48  # per process (torchrun: each rank takes this many)
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_epochs: float = 5.0
    warmup_steps: int | None = None  # overrides warmup_epochs when set
    schedule: str = "cosine"  # cosine (to min_lr_ratio x lr) after linear warm-up | constant
    min_lr_ratio: float = 0.0
    grad_clip: float | None = None
    precision: str = "auto"  # auto: bf16 autocast where native (CUDA; CPUs with AVX512-BF16/AMX), else fp32
    compile: bool = False
    ema: float | None = None  # decay of an exponential moving average of the weights (e.g. 0.999); None = off
    val_every: int = 1000  # steps between validations (0 = only at the end)
    val_every_s: float | None = None  # or: seconds of training between validations (runs with a time budget)
    val_limit: int | None = 500  # samples per validation LMDB during training (None = all)
    log_every: int = 20
    ckpt_every: int = 1000
    seed: int = 0
    workers: int | None = None  # processes that decode the LMDB (None = the machine's cores)
    max_bad_steps: int = 5  # non-finite losses in a row that stop the run
    glyph_records: str = "ok"  # which records the glyph loss sees: ok (status ok only) | all
    data: str = "auto"  # memory (decoded once, held on the device) | stream (read per batch by workers) | auto
    memory_gb: float | None = None  # auto's limit for holding the set (default: half the device's memory)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"train.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.batch < 1 or self.lr <= 0 or self.epochs < 1:
            raise ValueError("train.batch and train.epochs must be >= 1 and train.lr > 0")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"train.steps must be >= 1, got {self.steps}")
        if self.data not in ("auto", "memory", "stream"):
            raise ValueError(f"train.data must be auto, memory or stream, got {self.data!r}")
        if self.glyph_records not in ("ok", "all"):
            raise ValueError(f"train.glyph_records must be 'ok' or 'all', got {self.glyph_records!r}")


@dataclass(frozen=True)
class RunConfig:
    model: SRConfig = field(default_factory=SRConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return {"model": dataclasses.asdict(self.model), "loss": dataclasses.asdict(self.loss),
                "train": dataclasses.asdict(self.train)}

    @staticmethod
    def from_dict(d: dict) -> RunConfig:
        parts = {}
        for name, cls in (("model", SRConfig), ("loss", LossConfig), ("train", TrainConfig)):
            parts[name] = _build(cls, d.get(name, {}), name)
        unknown = set(d) - {"model", "loss", "train"}
        if unknown:
            raise ValueError(f"unknown configuration sections: {sorted(unknown)} (expected model, loss, train)")
        return RunConfig(**parts)


def _build(cls, values: dict, section: str):
    if not isinstance(values, dict):
        raise ValueError(f"configuration section {section!r} must be a mapping, got {type(values).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown keys in {section}: {sorted(unknown)}; known: {sorted(names)}")
    fixed = {k: _coerce(v) for k, v in values.items()}
    try:
        return cls(**fixed)
    except TypeError as exc:
        raise ValueError(f"{section}: {exc}") from None


def _coerce(v):
    """YAML 1.1 reads ``3e-4`` (no dot) as a string: numbers written that way are numbers here. Lists -> tuples."""
    if isinstance(v, list):
        return tuple(_coerce(x) for x in v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


#: Named starting points; ``--set`` and the YAML file apply on top.
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {},
    "short": {"model": {"residual": True, "stn": False},
              "train": {"batch": 256, "lr": 5e-4, "warmup_steps": 100, "grad_clip": 1.0, "ema": 0.995}},
}

VARIANTS = {  # the rows of the paper's Table 2
    "glyphsr": {"variant": "glyphsr"},
    "baseline1": {"variant": "baseline1"},
    "baseline2": {"variant": "baseline2"},
    "no-gfm": {"variant": "glyphsr", "gfm": False},
}


def _merge(base: dict, extra: dict) -> dict:
    out = {k: dict(v) for k, v in base.items()}
    for section, values in extra.items():
        out.setdefault(section, {}).update(values)
    return out


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` -> (section, key, value parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. train.lr=2e-3")
    path, raw = text.split("=", 1)
    if path.count(".") != 1:
        raise ValueError(f"--set {text!r}: the key must be SECTION.KEY with SECTION model, loss or train")
    section, key = path.split(".")
    return section.strip(), key.strip(), yaml.safe_load(raw)


def resolve(recipe: str = "paper", file: str | Path | None = None, overrides: list[str] = (),
            variant: str | None = None) -> RunConfig:
    """Recipe, then the YAML file, then ``--variant``, then ``--set`` overrides (later wins)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {sorted(RECIPES)}")
    d = _merge({"model": {}, "loss": {}, "train": {}}, RECIPES[recipe])
    if file is not None:
        p = Path(file)
        if not p.is_file():
            raise ValueError(f"configuration file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{p} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{p}: expected a mapping with sections model, loss, train")
        d = _merge(d, loaded)
    if variant is not None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
        d = _merge(d, {"model": VARIANTS[variant]})
    for text in overrides:
        section, key, value = parse_override(text)
        d = _merge(d, {section: {key: value}})
    return RunConfig.from_dict(d)


def save_yaml(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(_plain(config.to_dict()), sort_keys=False))


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
