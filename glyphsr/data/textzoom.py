"""TextZoom-format LMDB reading and writing.

The format (TextZoom, and every STISR repository after it):

- ``num-samples``: ASCII integer N;
- for i in 1..N (1-based): ``image_hr-%09d`` and ``image_lr-%09d`` (encoded image bytes, any format PIL reads),
  ``label-%09d`` (UTF-8);
- our synthetic data adds ``glyph_hr-%09d``: a PNG label map at the HR image's native size (0 background,
  k = k-th character of the label, 1-based). TextZoom readers ignore it.

Reading follows the TextZoom protocol: PIL decode, ``convert('RGB')``, HR resized to 128x32 and LR to 64x16
with bicubic; an optional 4th mask channel (gray > mean -> 0, else 1) as TPGSR and GlyphSR use. Arrays come
back as float32 (C, H, W) in [0, 1], like torchvision's ``ToTensor``, without importing torch.

The environment is opened lazily in each process (readonly, ``lock=False``, ``readahead=False``,
``meminit=False``), so a reader can be pickled to Dask workers or DataLoader workers and forked safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

from glyphsr.data.labels import VocType, str_filt

HR_SIZE = (32, 128)  # (H, W)
LR_SIZE = (16, 64)

KEY_NUM = b"num-samples"


def key(kind: str, index: int) -> bytes:
    """The LMDB key of record ``index`` (1-based): kind is image_hr, image_lr, label or glyph_hr."""
    return f"{kind}-{index:09d}".encode()


class TextZoomError(Exception):
    """A problem with a TextZoom LMDB or one of its records; names the LMDB, the index and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str, index: int | None = None):
        self.path = str(path)
        self.reason = reason
        self.index = index
        where = self.path if index is None else f"{self.path}, record {index}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # picklable, so errors cross process boundaries (Dask, multiprocessing)
        return (type(self), (self.path, self.reason, self.index))


class NotTextZoomError(TextZoomError):
    """The path is missing, not an LMDB, an LMDB without a valid ``num-samples``, or a damaged LMDB (a truncated
    copy, corrupted pages): nothing in it can be trusted, so no record is reported bad on its own."""


@dataclass(frozen=True)
class RawRecord:
    """One record as stored: native-size RGB images, the label as written, the glyph map if present."""

    index: int  # 1-based LMDB index
    label: str
    hr: Image.Image  # RGB, native size
    lr: Image.Image  # RGB, native size
    glyph: np.ndarray | None  # uint8 (H_hr, W_hr) label map, or None
    hr_format: str
    lr_format: str


@dataclass(frozen=True)
class Sample:
    """One record read by the TextZoom protocol."""

    index: int  # 1-based LMDB index
    label: str  # after the reader's label filter
    label_raw: str
    hr: np.ndarray  # float32 (C, 32, 128) in [0, 1]; C = 3 (RGB) or 4 (RGBM)
    lr: np.ndarray  # float32 (C, 16, 64) in [0, 1]


@dataclass(frozen=True)
class RecordInfo:
    """A record's vital statistics, or the reason it cannot be read."""

    index: int
    reason: str | None = None
    label_len: int = 0  # characters after the ``all`` filter
    hr_size: tuple[int, int] = (0, 0)  # (W, H) native
    lr_size: tuple[int, int] = (0, 0)
    hr_format: str = ""
    lr_format: str = ""
    has_glyph: bool = False


def _decode_image(data: bytes | None, what: str) -> tuple[Image.Image, str]:
    """Decode fully (PIL is lazy: truncation only shows on load); raise ValueError with a reason."""
    if data is None:
        raise ValueError(f"missing key {what}")
    if len(data) == 0:
        raise ValueError(f"{what} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            img.load()
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        why = re.sub(r"<[^<>]* object at 0x[0-9a-f]+>", "the bytes", str(exc))  # same record, same reason
        raise ValueError(f"{what} cannot be decoded ({len(data)} bytes): {why}") from None
    if img.width == 0 or img.height == 0:
        raise ValueError(f"{what} has zero size {img.width}x{img.height}")
    fmt = img.format or "?"
    return img.convert("RGB"), fmt


def _decode_label(data: bytes | None, what: str) -> str:
    if data is None:
        raise ValueError(f"missing key {what}")
    try:
        label = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 ({data[:32]!r}: {exc.reason} at byte {exc.start})") from None
    if not label.strip():
        raise ValueError(f"{what} is empty")
    if not str_filt(label, "all"):
        raise ValueError(f"{what} {label!r} has no digit, ASCII letter or punctuation")
    return label


def _decode_glyph(data: bytes, what: str, size: tuple[int, int]) -> np.ndarray:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as exc:
        raise ValueError(f"{what} cannot be decoded: {exc}") from None
    if img.size != size:
        raise ValueError(f"{what} is {img.size[0]}x{img.size[1]}, HR image is {size[0]}x{size[1]}")
    return np.asarray(img.convert("L"), dtype=np.uint8)


#: ITU-R BT.601 luma weights of R, G, B: PIL's ``convert("L")``, EasyOCR and the STISR code's gray images.
LUMA_601 = (0.299, 0.587, 0.114)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of RGB on the last axis: (..., 3) -> (...), in the input's range (float32 for integers).
    Torch tensors with channels first: :func:`glyphsr.recognizers.images.luma`."""
    x = rgb.astype(np.float32) if rgb.dtype.kind in "iub" else rgb
    r, g, b = LUMA_601
    return x[..., 0] * r + x[..., 1] * g + x[..., 2] * b


def text_mask(img: Image.Image) -> np.ndarray:
    """TPGSR's mask channel: gray > mean -> 0, else 1. Returns float32 (H, W)."""
    gray = np.asarray(img.convert("L"), dtype=np.float32)
    return (gray <= gray.mean()).astype(np.float32)


def textzoom_resize(img: Image.Image, size: tuple[int, int] = HR_SIZE) -> np.ndarray:
    """The TextZoom protocol's resize, kept in uint8: ``img`` (RGB, as :meth:`TextZoomLMDB.read_raw` gives it)
    bicubically to ``size`` (H, W) -> uint8 (H, W, 3). What GEM, the mask store and the pictures take."""
    img = img if img.mode == "RGB" else img.convert("RGB")
    return np.asarray(img.resize((size[1], size[0]), Image.BICUBIC), dtype=np.uint8)


def to_array(img: Image.Image, size: tuple[int, int], with_mask: bool) -> np.ndarray:
    """Bicubic resize to ``size`` (H, W) and convert to float32 (C, H, W) in [0, 1], C = 3 or 4 (RGBM)."""
    img = img.resize((size[1], size[0]), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0  # (3, H, W)
    if with_mask:
        arr = np.concatenate([arr, text_mask(img)[None]], axis=0)  # (4, H, W)
    return arr


_SHARED_ENVS: dict[str, list] = {}  # realpath -> [environment, readers holding it, pid]


def _drop_inherited_envs() -> None:
    """In a forked child: close the parent's environments (read-only, lock-free: this touches nothing the
    parent uses), since py-lmdb would refuse to open those files again in this process."""
    for entry in list(_SHARED_ENVS.values()):
        try:
            entry[0].close()
        except Exception:
            pass
    _SHARED_ENVS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_envs)


class TextZoomLMDB:
    """Read a TextZoom-format LMDB.

    ``len(ds)`` is ``num-samples``; ``ds[i]`` (0-based) is LMDB record i+1 read by the TextZoom protocol;
    ``ds.read_raw(index)`` (1-based) returns native-size images. A bad record raises :class:`TextZoomError`
    naming the path, the index and the reason; ``ds.check(index)`` returns that reason or None. A fault of the
    whole LMDB raises :class:`NotTextZoomError`: on opening (not an LMDB, ``data.mdb`` truncated) or on reading
    (corrupted pages, ``num-samples`` far above the keys present).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        voc_type: VocType = "all",
        with_mask: bool = False,
        hr_size: tuple[int, int] = HR_SIZE,
        lr_size: tuple[int, int] = LR_SIZE,
    ):
        self.path = str(path)
        self.voc_type = voc_type
        self.with_mask = with_mask
        self.hr_size = tuple(hr_size)
        self.lr_size = tuple(lr_size)
        str_filt("", voc_type)  # validates voc_type
        self._env_obj: lmdb.Environment | None = None
        self._pid: int | None = None
        self._num = self._read_num_samples()
        self._missing = self._hollow()  # raised by read_raw, so len() and fingerprint() still answer
        self.close()  # reopened lazily in whichever process reads

    # -- environment --------------------------------------------------------------------------------
    # py-lmdb refuses to open one environment twice in a process, so readers of the same path share one,
    # reference-counted, per process.
    def _open(self) -> lmdb.Environment:
        p = Path(self.path)
        if not p.exists():
            raise NotTextZoomError(self.path, "no such file or directory")
        subdir = p.is_dir()
        if subdir and not (p / "data.mdb").is_file():
            subs = sorted(c.name for c in p.iterdir() if (c / "data.mdb").is_file())
            hint = f" (it holds LMDBs: {', '.join(subs)}; pass one of them)" if subs else ""
            raise NotTextZoomError(self.path, f"not an LMDB: no data.mdb{hint}")
        real = os.path.realpath(self.path)
        entry = _SHARED_ENVS.get(real)
        if entry is not None and entry[2] == os.getpid():
            entry[1] += 1
            return entry[0]
        try:
            env = lmdb.open(
                self.path, subdir=subdir, readonly=True, lock=False, readahead=False, meminit=False,
                max_readers=256,
            )
        except lmdb.Error as exc:
            raise NotTextZoomError(self.path, f"cannot open as LMDB: {exc}") from None
        try:
            self._check_size(env, p / "data.mdb" if subdir else p)
        except NotTextZoomError:
            env.close()
            raise
        _SHARED_ENVS[real] = [env, 1, os.getpid()]
        return env

    def _check_size(self, env: lmdb.Environment, data_file: Path) -> None:
        """Refuse a data file shorter than the pages its meta page says are in use: lmdb maps the file, and reading
        a page past its end kills the process with SIGBUS (a partial copy). ``info`` and ``stat`` read only the two
        meta pages at the file's start, which ``lmdb.open`` has already read whole."""
        try:
            needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        except lmdb.Error as exc:
            raise self._damaged(exc) from None
        size = os.path.getsize(data_file)
        if size < needed:
            raise NotTextZoomError(self.path, f"{data_file.name} is truncated ({size:,} of {needed:,} bytes): a "
                                              "partial copy? Copy the LMDB again")

    @contextlib.contextmanager
    def _txn(self, buffers: bool = False) -> Iterator[lmdb.Transaction]:
        """A read transaction; an lmdb failure inside it is the file's fault (:meth:`_damaged`), not a record's."""
        try:
            with self._env().begin(write=False, buffers=buffers) as txn:
                yield txn
        except lmdb.Error as exc:
            raise self._damaged(exc) from None

    def _damaged(self, exc: lmdb.Error) -> NotTextZoomError:
        """The error for an lmdb failure while reading: the file, not one record, is bad."""
        name = "data.mdb" if Path(self.path).is_dir() else Path(self.path).name
        return NotTextZoomError(self.path, f"{name} is damaged ({type(exc).__name__}: {exc}); copy the LMDB again "
                                           "or write it anew")

    def _env(self) -> lmdb.Environment:
        if self._env_obj is None or self._pid != os.getpid():
            self._env_obj = self._open()
            self._pid = os.getpid()
        return self._env_obj

    def close(self) -> None:
        """Release this reader's handle (the environment closes when no reader of this process holds it)."""
        if self._env_obj is not None and self._pid == os.getpid():
            real = os.path.realpath(self.path)
            entry = _SHARED_ENVS.get(real)
            if entry is not None and entry[0] is self._env_obj:
                entry[1] -= 1
                if entry[1] <= 0:
                    del _SHARED_ENVS[real]
                    self._env_obj.close()
        self._env_obj = None
        self._pid = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_env_obj"] = None
        state["_pid"] = None
        return state

    def __enter__(self) -> TextZoomLMDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def labels(self, limit: int | None = None) -> list[str]:
        """The raw labels of the first ``limit`` records (all by default) without decoding any image; "" where a
        label is missing or not UTF-8 (``read_raw`` says why)."""
        n = self._num if limit is None else min(limit, self._num)
        out = []
        with self._txn() as txn:
            for i in range(1, n + 1):
                raw = txn.get(key("label", i))
                try:
                    out.append(raw.decode("utf-8") if raw is not None else "")
                except UnicodeDecodeError:
                    out.append("")
        return out

    def _get(self, k: bytes) -> bytes | None:
        with self._txn() as txn:
            return txn.get(k)

    def _read_num_samples(self) -> int:
        raw = self._get(KEY_NUM)
        if raw is None:
            raise NotTextZoomError(self.path, "LMDB has no 'num-samples' key: not a TextZoom LMDB")
        try:
            n = int(raw.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            raise NotTextZoomError(self.path, f"'num-samples' is not an integer: {raw[:32]!r}") from None
        if n < 0:
            raise NotTextZoomError(self.path, f"'num-samples' is negative: {n}")
        return n

    def _hollow(self) -> str | None:
        """Why reading records is pointless, or None: ``num-samples`` claims more records than the LMDB has keys
        (a record has 3), so most are missing, which is one fault to report, not one per record."""
        try:
            others = self._env().stat()["entries"] - 1  # keys besides num-samples
        except lmdb.Error as exc:
            raise self._damaged(exc) from None
        if self._num <= others:
            return None
        return (f"'num-samples' is {self._num:,} but the LMDB holds only {others:,} other keys (a record has 3: "
                "image_hr, image_lr, label): most records are missing; write or copy the LMDB again")

    # -- reading ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._num

    def _check_index(self, index: int) -> None:
        if not 1 <= index <= self._num:
            raise IndexError(f"{self.path}: index {index} out of range 1..{self._num} (indices are 1-based)")

    def read_raw(self, index: int) -> RawRecord:
        """Record ``index`` (1-based) at native size. Raises TextZoomError for a bad record, NotTextZoomError
        (its subclass) when the LMDB itself is damaged."""
        self._check_index(index)
        if self._missing is not None:
            raise NotTextZoomError(self.path, self._missing)
        with self._txn() as txn:
            hr_b = txn.get(key("image_hr", index))
            lr_b = txn.get(key("image_lr", index))
            lab_b = txn.get(key("label", index))
            gly_b = txn.get(key("glyph_hr", index))
        try:
            label = _decode_label(lab_b, key("label", index).decode())
            hr, hr_fmt = _decode_image(hr_b, key("image_hr", index).decode())
            lr, lr_fmt = _decode_image(lr_b, key("image_lr", index).decode())
            glyph = None
            if gly_b is not None:
                glyph = _decode_glyph(gly_b, key("glyph_hr", index).decode(), hr.size)
        except ValueError as exc:
            raise TextZoomError(self.path, str(exc), index) from None
        return RawRecord(index, label, hr, lr, glyph, hr_fmt, lr_fmt)

    def sample(self, index: int) -> Sample:
        """Record ``index`` (1-based) read by the TextZoom protocol."""
        rec = self.read_raw(index)
        return Sample(
            index=index,
            label=str_filt(rec.label, self.voc_type),
            label_raw=rec.label,
            hr=to_array(rec.hr, self.hr_size, self.with_mask),
            lr=to_array(rec.lr, self.lr_size, self.with_mask),
        )

    def __getitem__(self, i: int) -> Sample:
        if not 0 <= i < self._num:
            raise IndexError(f"{self.path}: sample {i} out of range 0..{self._num - 1}")
        return self.sample(i + 1)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(1, self._num + 1):
            yield self.sample(i)

    def inspect(self, index: int) -> RecordInfo:
        """What ``textzoom-info`` reports of record ``index`` (1-based): sizes, formats, or the reason it is bad.
        Raises NotTextZoomError when the LMDB itself is damaged."""
        try:
            rec = self.read_raw(index)
        except NotTextZoomError:
            raise
        except TextZoomError as exc:
            return RecordInfo(index, reason=exc.reason)
        return RecordInfo(index, label_len=len(str_filt(rec.label, "all")), hr_size=rec.hr.size,
                          lr_size=rec.lr.size, hr_format=rec.hr_format, lr_format=rec.lr_format,
                          has_glyph=rec.glyph is not None)

    def check(self, index: int) -> str | None:
        """The reason record ``index`` (1-based) is bad, or None when it reads. Raises NotTextZoomError when the
        LMDB itself is damaged."""
        try:
            self.read_raw(index)
        except NotTextZoomError:
            raise
        except TextZoomError as exc:
            return exc.reason
        return None

    def fingerprint(self) -> str:
        """A blake2b digest of every key and value: equal digests mean equal contents."""
        h = hashlib.blake2b(digest_size=16)
        with self._txn(buffers=True) as txn:
            for k, v in txn.cursor():
                h.update(len(k).to_bytes(4, "little"))
                h.update(k)
                h.update(len(v).to_bytes(8, "little"))
                h.update(v)
        return h.hexdigest()


def encode_image(img: Image.Image | np.ndarray, fmt: str = "PNG", quality: int = 95) -> bytes:
    """Encode an RGB/L image (PIL or uint8 array) as PNG or JPEG bytes."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    if fmt.upper() in ("JPEG", "JPG"):
        img.save(buf, format="JPEG", quality=int(quality))
    else:
        img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class TextZoomWriter:
    """Write a TextZoom-format LMDB atomically: records go to ``PATH.partial`` which is renamed to ``PATH``
    when :meth:`close` succeeds; an exception inside ``with`` leaves ``PATH`` untouched.

    >>> with TextZoomWriter("out/train") as w:
    ...     w.add("Parking", hr_bytes, lr_bytes)
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False, map_size: int = 1 << 36,
                 commit_every: int = 1000):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists (pass overwrite=True to replace it)")
        self.tmp = self.path.with_name(self.path.name + ".partial")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(str(self.tmp), map_size=map_size, subdir=True, lock=True)
        self._txn = self._env.begin(write=True)
        self._n = 0
        self._commit_every = commit_every
        self._closed = False

    def __len__(self) -> int:
        return self._n

    def add(self, label: str, hr: bytes, lr: bytes, glyph: bytes | None = None) -> int:
        """Append one record; returns its 1-based index."""
        self._n += 1
        i = self._n
        self._txn.put(key("label", i), label.encode("utf-8"))
        self._txn.put(key("image_hr", i), hr)
        self._txn.put(key("image_lr", i), lr)
        if glyph is not None:
            self._txn.put(key("glyph_hr", i), glyph)
        if i % self._commit_every == 0:
            self._txn.commit()
            self._txn = self._env.begin(write=True)
        return i

    def close(self) -> Path:
        """Write ``num-samples``, flush, and move the LMDB into place."""
        if self._closed:
            return self.path
        self._txn.put(KEY_NUM, str(self._n).encode("ascii"))
        self._txn.commit()
        self._env.sync()
        self._env.close()
        self._closed = True
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._closed:
            return
        self._txn.abort()
        self._env.close()
        self._closed = True
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> TextZoomWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
