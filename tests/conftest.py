"""Shared fixtures: hand-built TextZoom LMDBs (raw lmdb, not our writer) and a small synthetic TextZoom."""

from __future__ import annotations

import io
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image, ImageDraw


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def word_image(text: str, size: tuple[int, int], mode: str = "RGB", dark_on_light: bool = True) -> Image.Image:
    """A plain text image: dark text on a light background (or the reverse)."""
    bg, fg = ((235, 230, 220), (20, 30, 40)) if dark_on_light else ((20, 30, 40), (235, 230, 220))
    img = Image.new("RGB", size, bg)
    ImageDraw.Draw(img).text((2, size[1] // 4), text, fill=fg)
    return img.convert(mode)


def build_lmdb(path: Path, entries: dict[str, bytes], num_samples: str | bytes | None) -> Path:
    """Write raw keys (str -> bytes) and an optional num-samples value."""
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        if num_samples is not None:
            txn.put(b"num-samples", num_samples if isinstance(num_samples, bytes) else num_samples.encode())
        for k, v in entries.items():
            txn.put(k.encode(), v)
    env.close()
    return path


def record(i: int, label: str | bytes, hr: bytes, lr: bytes) -> dict[str, bytes]:
    return {
        f"label-{i:09d}": label if isinstance(label, bytes) else label.encode("utf-8"),
        f"image_hr-{i:09d}": hr,
        f"image_lr-{i:09d}": lr,
    }


@pytest.fixture
def good_lmdb(tmp_path: Path) -> Path:
    """Five good records: PNG and JPEG, RGB and grayscale, native sizes, a label past 15 characters."""
    specs = [
        ("Parking", (150, 40), (70, 18), "PNG", "RGB"),
        ("OPEN24", (98, 30), (50, 15), "JPEG", "RGB"),
        ("gray", (64, 32), (30, 15), "PNG", "L"),
        ("Internationalization", (300, 36), (140, 17), "JPEG", "L"),
        ("a1!", (40, 48), (20, 24), "PNG", "RGB"),
    ]
    entries: dict[str, bytes] = {}
    for i, (label, hr_size, lr_size, fmt, mode) in enumerate(specs, start=1):
        entries.update(record(i, label, encode(word_image(label, hr_size, mode), fmt),
                              encode(word_image(label, lr_size, mode), fmt)))
    return build_lmdb(tmp_path / "good", entries, str(len(specs)))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic TextZoom written by the real generator with 2 processes."""
    from glyphsr.data.synth.generator import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, n_train=40, n_test=60, seed=3, workers=2)
    return out


def png_bytes(arr: np.ndarray) -> bytes:
    return encode(Image.fromarray(arr))


@pytest.fixture(scope="session")
def synth_store(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mask store gem-extract makes from ``synth_dir``'s training split (one worker process)."""
    from click.testing import CliRunner

    from glyphsr.pipelines import gem_extract

    out = tmp_path_factory.mktemp("store") / "masks.zarr"
    res = CliRunner().invoke(gem_extract.main, ["--lmdb", str(synth_dir / "train"), "--out", str(out),
                                                "--shard-size", "16", "--workers", "1", "--dashboard", ":0"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="session", autouse=True)
def _private_eval_cache(tmp_path_factory: pytest.TempPathFactory):
    """The judges' reference cache in a temporary folder: no test reads or writes the user's ~/.cache/glyphsr."""
    import os

    old = os.environ.get("GLYPHSR_CACHE")
    os.environ["GLYPHSR_CACHE"] = str(tmp_path_factory.mktemp("glyphsr-cache"))
    yield
    if old is None:
        os.environ.pop("GLYPHSR_CACHE", None)
    else:
        os.environ["GLYPHSR_CACHE"] = old
