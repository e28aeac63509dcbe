"""Training configuration: the model's ``SRConfig``, the loss's ``LossConfig`` and a ``TrainConfig``, one frozen
``RunConfig`` that a YAML file and ``KEY=VALUE`` overrides build, saved resolved in the run folder and in every
checkpoint (the network is rebuilt from the checkpoint, never from the command line).

Keys are dotted: ``model.residual=true``, ``loss.w_hog=0.05``, ``train.lr=2e-3``; values are YAML scalars or lists,
checked against the field's type (a bool is true/false/yes/no/1/0, an int an integer, ...) and range before anything
runs.

Recipes (``RECIPES``, ``--recipe NAME``): ``paper`` is the paper's (Adam 1e-3, batch 48, 200 epochs, 5 warm-up
epochs then cosine; the paper's network, no global skip). ``short`` is for runs of minutes: the same network plus
the global skip (``model.residual``) and without the STN, the same loss without the text focus, batch 256, lr 5e-4
after 100 warm-up steps, EMA 0.995. The README's training section gives the measurements behind it: in the first GPU
session (2.5 minutes per run, four runs sharing one H200) only runs with the skip kept readable output, lr 2e-3
after 200 warm-up steps wrecked the bicubic start while the rate rose, and the EMA of the weights read 4x better
than the weights themselves; lr 5e-4 and the EMA on by default follow from that and are not measured yet. The STN
(which runs in training only, as in TPGSR) warped the input early in 3-minute CPU runs (a mean change of 0.13 to the
LR images after 112 steps at lr up to 1e-4), and the difference the blocks learned on warped inputs lowered PSNR
below bicubic's at inference; without it the same pixel-loss run rose above bicubic. The CRNN text focus, in 300 CPU
steps on the same batches, first pulled PSNR 1.0 dB below bicubic's and accuracy to 31% (step 100), and ended 0.3 dB
below bicubic at bicubic's accuracy, where the run without it ended 0.2 dB above (README); ``--set
loss.text_focus=crnn`` puts it back. ``short`` also judges the residual gain at the end of a run
(``train.calibrate_n``, :mod:`glyphsr.sr.calibrate`): the end weights of an H200 run with the text focus read 36.5%
against bicubic's 39.1%, and 42.3% with their difference halved.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
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
    time_budget_s: float | None = None  # stop after this much training time (None or 0: no limit); the schedule
    # follows the clock then
    batch: int = 48  # per process (torchrun: each rank takes this many)
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_epochs: float = 5.0
    warmup_steps: int | None = None  # overrides warmup_epochs when set
    schedule: str = "cosine"  # cosine (to min_lr_ratio x lr) after linear warm-up | constant
    min_lr_ratio: float = 0.0
    grad_clip: float | None = None  # the gradients' global norm is clipped to this; None or 0: no clipping
    precision: str = "auto"  # auto: bf16 autocast where native (CUDA; CPUs with AVX512-BF16/AMX), else fp32
    compile: bool = False
    ema: float | None = None  # decay of an exponential moving average of the weights (e.g. 0.999); None = off
    val_every: int = 1000  # steps between validations (0 = only at the end)
    val_every_s: float | None = None  # or: seconds of training between validations (None or 0: off)
    val_limit: int | None = 500  # samples per validation LMDB during training (None = all)
    log_every: int = 20
    ckpt_every: int = 1000
    seed: int = 0
    workers: int | None = None  # processes that decode the LMDB (None or 0 = the machine's cores)
    max_bad_steps: int = 5  # non-finite losses in a row that stop the run
    glyph_records: str = "ok"  # which records the glyph loss sees: ok (status ok only) | all
    data: str = "auto"  # memory (decoded once, held on the device) | stream (read per batch by workers) | auto
    memory_gb: float | None = None  # auto's limit for holding the set (default: half the device's memory)
    calibrate_n: int = 0  # training pairs on which the residual gain is judged at the end (0: off; needs
    # model.residual; glyphsr.sr.calibrate): checkpoints/calibrated
    calibrate_gains: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"train.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.batch < 1 or self.lr <= 0 or self.epochs < 1:
            raise ValueError("train.batch and train.epochs must be >= 1 and train.lr > 0")
        # the loop divides by log_every, validates every val_every steps (0: only at the end), ...
        for name, low in (("steps", 1), ("log_every", 1), ("max_bad_steps", 1), ("val_limit", 1), ("workers", 0),
                          ("val_every", 0), ("ckpt_every", 0), ("warmup_steps", 0), ("warmup_epochs", 0),
                          ("weight_decay", 0), ("grad_clip", 0), ("val_every_s", 0), ("time_budget_s", 0),
                          ("calibrate_n", 0)):
            v = getattr(self, name)
            if v is not None and v < low:
                raise ValueError(f"train.{name} must be >= {low}, got {v}")
        for name in ("memory_gb",):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"train.{name} must be > 0 (or null for none), got {v}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise ValueError(f"train.ema must be in [0, 1) (the decay; null for none), got {self.ema}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"train.betas must be two numbers in [0, 1), got {list(self.betas)}")
        if self.data not in ("auto", "memory", "stream"):
            raise ValueError(f"train.data must be auto, memory or stream, got {self.data!r}")
        if self.glyph_records not in ("ok", "all"):
            raise ValueError(f"train.glyph_records must be 'ok' or 'all', got {self.glyph_records!r}")
        if not self.calibrate_gains or not all(math.isfinite(g) and g >= 0 for g in self.calibrate_gains):
            raise ValueError(f"train.calibrate_gains must be a list of numbers >= 0, got {list(self.calibrate_gains)}")
        if len({f"{g:g}" for g in self.calibrate_gains}) < len(self.calibrate_gains):
            raise ValueError(f"train.calibrate_gains repeats a gain (as the table writes them: "
                             f"{[f'{g:g}' for g in self.calibrate_gains]}), got {list(self.calibrate_gains)}")


@dataclass(frozen=True)
class RunConfig:
    model: SRConfig = field(default_factory=SRConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.train.calibrate_n and not self.model.residual:
            raise ValueError("train.calibrate_n needs model.residual=true: the residual gain scales the difference "
                             "the network adds to the bicubic image, and without the global skip there is none (the "
                             "short recipe turns it on; --set train.calibrate_n=0 turns it off)")

    def to_dict(self) -> dict:
        return {"model": dataclasses.asdict(self.model), "loss": dataclasses.asdict(self.loss),
                "train": dataclasses.asdict(self.train)}

    @staticmethod
    def from_dict(d: dict) -> RunConfig:
        unknown = set(d) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown configuration sections: {sorted(unknown)} (expected model, loss, train)")
        return RunConfig(**{name: _build(cls, {} if d.get(name) is None else d[name], name)
                            for name, cls in SECTIONS.items()})


SECTIONS = {"model": SRConfig, "loss": LossConfig, "train": TrainConfig}

#: The network's sizes, below which it cannot be built (SRConfig checks its switches and n_gly itself).
MODEL_AT_LEAST_1 = ("n_blocks", "c_sr", "c_tp", "max_chars", "classes", "in_channels", "scale")
#: Settings with a few allowed values that their dataclass checks only when the loss is built, after the data.
CHOICES = {("loss", "text_focus"): ("crnn", "stt", "none")}


def _build(cls, values: dict, section: str):
    if not isinstance(values, dict):
        raise ValueError(f"configuration section {section!r} must be a mapping of KEY: VALUE, got "
                         f"{type(values).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown keys in {section}: {sorted(map(str, unknown))}; known: {sorted(names)}")
    fixed = {}
    for k, v in values.items():
        try:
            fixed[k] = check_value(section, k, v)
        except ValueError as exc:
            raise ValueError(f"{section}.{k}: {exc}, got {v!r}") from None
    try:
        return cls(**fixed)
    except TypeError as exc:
        raise ValueError(f"{section}: {exc}") from None


@functools.cache
def _types(section: str) -> dict[str, Any]:
    return typing.get_type_hints(SECTIONS[section])


def check_value(section: str, key: str, value: Any) -> Any:
    """``value`` as the field ``section.key`` holds it: converted to its type (YAML 1.1 reads ``3e-4`` as text, an
    integral float is an int, lists become tuples) and, for the network's sizes and ``CHOICES``, checked; ValueError
    says what was expected. ``key`` must be one of the section's fields."""
    tp = _types(section)[key]
    try:
        v = _convert(tp, value)
    except _Mismatch:
        raise ValueError(f"expected {_describe(tp)}") from None
    if section == "model" and key in MODEL_AT_LEAST_1 and v < 1:
        raise ValueError("expected an integer >= 1")
    choices = CHOICES.get((section, key))
    if choices and v not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}")
    return v


class _Mismatch(Exception):
    pass


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
_NOUNS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _optional(tp) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            return inner[0], True
    return tp, False


def _describe(tp) -> str:
    inner, optional = _optional(tp)
    if optional:
        return f"{_describe(inner)} or null"
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}, e.g. [a, b]"
        return f"a list of {len(args)} {_plural(args[0])}"
    return _NOUNS.get(tp, str(tp))


def _plural(tp) -> str:
    return {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}.get(tp, str(tp))


def _convert(tp, v):
    inner, optional = _optional(tp)
    if optional:
        if v is None or (inner is not str and isinstance(v, str) and v.strip().lower() in ("none", "null")):
            return None
        return _convert(inner, v)
    if typing.get_origin(tp) is tuple:
        if not isinstance(v, (list, tuple)):
            raise _Mismatch
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], x) for x in v)
        if len(v) != len(args):
            raise _Mismatch
        return tuple(_convert(a, x) for a, x in zip(args, v))
    if tp is bool:
        if isinstance(v, bool):
            return v
        text = str(v).strip().lower() if isinstance(v, (str, int)) else None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise _Mismatch
    if tp is int:
        if isinstance(v, str):
            v = _number(v)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v):
            raise _Mismatch
        return int(v)
    if tp is float:
        if isinstance(v, str):
            v = _number(v)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _Mismatch
        return float(v)
    if tp is str:
        if isinstance(v, str):
            return v
        if isinstance(v, int) and not isinstance(v, bool):  # a name YAML read as a number, e.g. 2024
            return str(v)
        raise _Mismatch
    return v


def _number(text: str) -> int | float:
    try:
        return int(text.strip())
    except ValueError:
        try:
            return float(text.strip())
        except ValueError:
            raise _Mismatch from None


#: Named starting points; ``--set`` and the YAML file apply on top.
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {},
    "short": {"model": {"residual": True, "stn": False}, "loss": {"text_focus": "none"},
              "train": {"batch": 256, "lr": 5e-4, "warmup_steps": 100, "grad_clip": 1.0, "ema": 0.995,
                        "calibrate_n": 500}},
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
    """``section.key=value`` -> (section, key, value parsed as YAML and, for a known key, checked against its
    field's type: a bool takes true/false/yes/no/1/0 as written (YAML 1.1 would read on/off too), a string the text
    as written (YAML would read 2024 or 1e3 as a number))."""
    if "=" not in text:
        raise ValueError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. train.lr=2e-3")
    path, raw = text.split("=", 1)
    if path.count(".") != 1:
        raise ValueError(f"--set {text!r}: the key must be SECTION.KEY with SECTION model, loss or train")
    section, key = (x.strip() for x in path.split("."))
    if section not in SECTIONS:
        raise ValueError(f"--set {text}: unknown section {section!r}; expected model, loss or train")
    value = yaml.safe_load(raw)
    if key not in _types(section):
        return section, key, value  # refused with the section's known keys when the configuration is built
    inner, _ = _optional(_types(section)[key])
    if inner in (bool, str) and value is not None and not isinstance(value, str):
        value = raw.strip()
    try:
        return section, key, check_value(section, key, value)
    except ValueError as exc:
        raise ValueError(f"--set {text}: {exc}") from None


def _read_file(p: Path) -> dict:
    """A YAML configuration file's sections, each a mapping with its values checked against their fields."""
    if not p.is_file():
        raise ValueError(f"configuration file not found: {p}")
    try:
        loaded = yaml.safe_load(p.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{p}: expected a mapping with sections model, loss, train")
    unknown = set(loaded) - set(SECTIONS)
    if unknown:
        raise ValueError(f"{p}: unknown configuration sections: {sorted(map(str, unknown))} (expected model, loss, "
                         "train)")
    out = {}
    for section, values in loaded.items():
        if values is None:  # a section with no keys
            continue
        if not isinstance(values, dict):
            raise ValueError(f"{p}: section {section!r} must be a mapping of KEY: VALUE, got "
                             f"{type(values).__name__} ({values!r})")
        out[section] = {}
        for k, v in values.items():
            try:
                out[section][k] = check_value(section, k, v) if k in _types(section) else v
            except ValueError as exc:
                raise ValueError(f"{p}: {section}.{k}: {exc}, got {v!r}") from None
    return out


def resolve(recipe: str = "paper", file: str | Path | None = None, overrides: list[str] = (),
            variant: str | None = None) -> RunConfig:
    """Recipe, then the YAML file, then ``--variant``, then ``--set`` overrides (later wins)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {sorted(RECIPES)}")
    d = _merge({"model": {}, "loss": {}, "train": {}}, RECIPES[recipe])
    if file is not None:
        d = _merge(d, _read_file(Path(file)))
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
