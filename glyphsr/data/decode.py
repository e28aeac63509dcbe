"""Decode a whole TextZoom LMDB into uint8 arrays by the TextZoom protocol, in parallel processes.

``decode_lmdb(path, limit=None, workers=None)`` -> :class:`DecodedSet`: LR (N, 3, 16, 64) and HR (N, 3, 32, 128)
uint8 RGB (PIL bicubic, as ``TextZoomLMDB`` reads them), the raw labels, and the bad records (index -> reason),
whose images are left zero. It is what the trainer holds in memory and what evaluation judges.

Workers are spawned (not forked) with ``OMP_NUM_THREADS=1``: a forked child of a process that imported torch
inherits its thread pools, which made decoding 20,000 pairs take 165 s instead of 9 s on a 16-core machine.
This module imports neither torch nor anything that does.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from dataclasses import dataclass, field

import numpy as np

from glyphsr.data.textzoom import HR_SIZE, LR_SIZE, NotTextZoomError, TextZoomError, TextZoomLMDB, textzoom_resize

CHUNK = 512


@dataclass
class DecodedSet:
    path: str
    lr: np.ndarray  # uint8 (N, 3, 16, 64)
    hr: np.ndarray  # uint8 (N, 3, 32, 128)
    labels: list[str]  # raw labels ("" for a bad record)
    bad: dict[int, str] = field(default_factory=dict)  # 0-based sample -> reason

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def good(self) -> np.ndarray:
        """Boolean (N,): the records that decoded."""
        ok = np.ones(len(self), dtype=bool)
        ok[list(self.bad)] = False
        return ok


def _decode_chunk(args: tuple[str, int, int]) -> tuple[int, np.ndarray, np.ndarray, list[str], dict[int, str]]:
    path, start, stop = args
    n = stop - start
    lr = np.zeros((n, 3, *LR_SIZE), np.uint8)
    hr = np.zeros((n, 3, *HR_SIZE), np.uint8)
    labels, bad = [], {}
    with TextZoomLMDB(path) as ds:
        for j in range(n):
            try:
                rec = ds.read_raw(start + j + 1)
            except NotTextZoomError:
                raise  # the LMDB itself is damaged: not one bad record, and the rest cannot be trusted
            except TextZoomError as exc:
                labels.append("")
                bad[start + j] = exc.reason
                continue
            lr[j] = textzoom_resize(rec.lr, LR_SIZE).transpose(2, 0, 1)
            hr[j] = textzoom_resize(rec.hr, HR_SIZE).transpose(2, 0, 1)
            labels.append(rec.label)
    return start, lr, hr, labels, bad


def decode_lmdb(path: str | os.PathLike, limit: int | None = None, workers: int | None = None) -> DecodedSet:
    """Every record (or the first ``limit``) of a TextZoom LMDB, decoded. Raises NotTextZoomError for a path that
    is no TextZoom LMDB or a damaged one (truncated, corrupted); bad records are listed in ``bad``, not raised."""
    path = str(path)
    with TextZoomLMDB(path) as ds:
        n = len(ds)
    if limit is not None:
        n = min(n, limit)
    lr = np.zeros((n, 3, *LR_SIZE), np.uint8)
    hr = np.zeros((n, 3, *HR_SIZE), np.uint8)
    labels: list[str] = [""] * n
    bad: dict[int, str] = {}
    jobs = [(path, s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))

    def take(result) -> None:
        start, a, b, labs, bads = result
        lr[start:start + len(labs)] = a
        hr[start:start + len(labs)] = b
        labels[start:start + len(labs)] = labs
        bad.update(bads)

    if workers == 1:
        for job in jobs:
            take(_decode_chunk(job))
    else:
        # the spawned children read these at start
        with scoped_environ(dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), "1")):
            with mp.get_context("spawn").Pool(workers) as pool:
                for result in pool.imap_unordered(_decode_chunk, jobs):
                    take(result)
    return DecodedSet(path, lr, hr, labels, bad)


@contextlib.contextmanager
def scoped_environ(env: dict[str, str]):
    """Set these environment variables for the block (and the processes it starts), then put back what was
    there."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


TIER_NAMES = ("easy", "medium", "hard")


def find_sets(path: str | os.PathLike) -> dict[str, str]:
    """The LMDBs a path stands for, by name: a ``textzoom-synth`` folder (``test/easy|medium|hard``), TextZoom's
    ``test/`` folder (``easy|medium|hard``), or one LMDB (named after its folder). Raises FileNotFoundError when
    the path is none of these."""
    from pathlib import Path

    p = Path(path)
    for root in (p / "test", p):
        tiers = {t: root / t for t in TIER_NAMES}
        if all((q / "data.mdb").is_file() for q in tiers.values()):
            return {t: str(q) for t, q in tiers.items()}
    if (p / "data.mdb").is_file():
        return {p.name: str(p)}
    raise FileNotFoundError(f"{p}: not a TextZoom LMDB, a test folder with easy/medium/hard, or a textzoom-synth "
                            "folder")
