"""Training data held in memory as uint8 tensors (on the GPU when there is one), with every target derived from
labels and pseudo-labels computed once, not per step.

Per sample: LR (3, 16, 64) and HR (3, 32, 128) RGB; the line and character pseudo-labels area-averaged to 16x64
and stored as quarters (0..4, uint8: 2x2 blocks of a 0/1 mask); class targets (L,); the CRNN text focus's CTC
targets; whether the glyph loss may use the sample (``glyph_ok``). The mask channel of TPGSR (RGBM) is computed on
the device per batch. A TextZoom-size set (17,367 pairs) takes about 0.6 GB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch

from glyphsr.data.labels import MAX_CHARS
from glyphsr.sr.evaluation import rgbm
from glyphsr.sr.losses import class_targets, encode_ctc


def quarters(masks: np.ndarray) -> np.ndarray:
    """(N, K, 32, 128) 0/1 uint8 -> (N, K, 16, 64) uint8 counts 0..4 of each 2x2 block (area average x 4)."""
    n, k, h, w = masks.shape
    return masks.reshape(n, k, h // 2, 2, w // 2, 2).sum(axis=(3, 5), dtype=np.uint8)


@dataclass
class TrainTensors:
    lr: torch.Tensor  # uint8 (N, 3, 16, 64)
    hr: torch.Tensor  # uint8 (N, 3, 32, 128)
    line: torch.Tensor  # uint8 (N, 1, 16, 64), quarters
    char: torch.Tensor  # uint8 (N, L, 16, 64), quarters
    cls: torch.Tensor  # int64 (N, L)
    ctc: torch.Tensor  # int64 (N, S)
    ctc_len: torch.Tensor  # int64 (N,)
    glyph_ok: torch.Tensor  # bool (N,)
    tf_target: torch.Tensor | None = None  # float16 (N, T, D): the frozen recognizer's view of HR
    labels: list[str] | None = None  # raw labels (for a text focus that reads strings, e.g. the STT's)

    def __len__(self) -> int:
        return int(self.lr.shape[0])

    def to(self, device: torch.device) -> TrainTensors:
        return TrainTensors(**{f.name: v.to(device) if isinstance(v := getattr(self, f.name), torch.Tensor) else v
                               for f in fields(self)})

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for f in fields(self)
                   if isinstance(t := getattr(self, f.name), torch.Tensor))

    def batch(self, idx: torch.Tensor) -> dict:
        """The model's and the loss's inputs for samples ``idx`` (a tensor on the data's device)."""
        out = {"lr": rgbm(self.lr[idx]), "hr": rgbm(self.hr[idx]),
               "line": self.line[idx].float() / 4, "char": self.char[idx].float() / 4,
               "cls": self.cls[idx], "ctc": (self.ctc[idx], self.ctc_len[idx]), "glyph_ok": self.glyph_ok[idx]}
        if self.tf_target is not None:
            out["tf_target"] = self.tf_target[idx]
        if self.labels is not None:
            out["labels"] = [self.labels[i] for i in idx.tolist()]
        return out


def build_tensors(lr: np.ndarray, hr: np.ndarray, labels: list[str], line: np.ndarray, char: np.ndarray,
                  glyph_ok: np.ndarray, max_chars: int = MAX_CHARS) -> TrainTensors:
    """From uint8 LR/HR arrays, labels, and the store's 32x128 masks (or their 16x64 quarters)."""
    if line.shape[-1] == 128:
        line = quarters(line)
    if char.shape[-1] == 128:
        char = quarters(char)
    ctc, ctc_len = encode_ctc(labels)
    return TrainTensors(lr=torch.from_numpy(np.ascontiguousarray(lr)), hr=torch.from_numpy(np.ascontiguousarray(hr)),
                        line=torch.from_numpy(np.ascontiguousarray(line)),
                        char=torch.from_numpy(np.ascontiguousarray(char)),
                        cls=class_targets(labels, max_chars), ctc=ctc, ctc_len=ctc_len,
                        glyph_ok=torch.from_numpy(np.asarray(glyph_ok, dtype=bool)), labels=list(labels))


@torch.no_grad()
def add_text_focus_targets(data: TrainTensors, text_focus, batch: int | None = None,
                           progress: Callable[[int, int], None] | None = None, bf16: bool = False) -> None:
    """Compute the frozen recognizer's per-step probabilities of every HR image once (float16). ``progress(done,
    total)`` is called after each batch (20,000 images take minutes on a 2-core CPU). ``batch``: 512 on a GPU, 64
    on the CPU. ``bf16``: the recognizer under bf16 autocast, as the training step runs it."""
    if text_focus is None or not hasattr(text_focus, "hr_target") or not isinstance(data, TrainTensors):
        return  # a streaming set computes them per step
    batch = batch or (512 if data.hr.is_cuda else 64)
    parts = []
    for s in range(0, len(data), batch):
        with torch.autocast(data.hr.device.type, dtype=torch.bfloat16, enabled=bf16):
            p = text_focus.hr_target(rgbm(data.hr[s:s + batch]))
        parts.append(p.to(torch.float16))
        if progress is not None:
            progress(min(s + batch, len(data)), len(data))
    data.tf_target = torch.cat(parts)


#: Bytes a training sample takes in memory: LR, HR, the masks' quarters, the text-focus targets (float16 63 x 97).
SAMPLE_BYTES = 3 * 16 * 64 + 3 * 32 * 128 + (1 + MAX_CHARS) * 16 * 64 + 2 * 63 * 97


class _Records(torch.utils.data.Dataset):
    """Index lists -> one batch of raw uint8 arrays read from the LMDB and the mask store (in a DataLoader worker)."""

    def __init__(self, lmdb: str, store: str, samples: np.ndarray):
        self.lmdb, self.store, self.samples = lmdb, store, samples
        self._ds = self._root = None

    def __len__(self) -> int:  # a map-style dataset indexed by lists: the sampler decides
        return len(self.samples)

    def __getitem__(self, idx) -> dict[str, np.ndarray]:
        import zarr

        from glyphsr.data.textzoom import HR_SIZE, LR_SIZE, TextZoomLMDB, textzoom_resize

        if self._ds is None:
            self._ds = TextZoomLMDB(self.lmdb)
            self._root = zarr.open_group(self.store, mode="r")
        rows = self.samples[np.asarray(idx)]
        lr = np.stack([textzoom_resize(self._ds.read_raw(int(i) + 1).lr, LR_SIZE) for i in rows]).transpose(0, 3, 1, 2)
        hr = np.stack([textzoom_resize(self._ds.read_raw(int(i) + 1).hr, HR_SIZE) for i in rows]).transpose(0, 3, 1, 2)
        order = np.argsort(rows)
        back = np.argsort(order)
        char = self._root["char"].get_orthogonal_selection((rows[order],))[back]
        line = self._root["line"].get_orthogonal_selection((rows[order],))[back]
        return {"lr": np.ascontiguousarray(lr), "hr": np.ascontiguousarray(hr), "line": quarters(line),
                "char": quarters(char)}


class StreamingData:
    """A training set too big for memory: LR/HR decoded from the LMDB and masks read from the store per batch by
    DataLoader workers (spawned); the targets derived from labels stay in memory. Same batches as
    :class:`TrainTensors` for the same indices; the text-focus targets are computed per step instead of once."""

    tf_target = None

    def __init__(self, lmdb: str, store: str, samples: np.ndarray, labels: list[str], glyph_ok: np.ndarray,
                 workers: int = 4, max_chars: int = MAX_CHARS):
        self.records = _Records(str(lmdb), str(store), np.asarray(samples, dtype=np.int64))
        self.cls = class_targets(labels, max_chars)
        self.ctc, self.ctc_len = encode_ctc(labels)
        self.glyph_ok = torch.from_numpy(np.asarray(glyph_ok, dtype=bool))
        self.labels = list(labels)
        self.workers = workers
        self.device = torch.device("cpu")

    def __len__(self) -> int:
        return len(self.records.samples)

    def to(self, device: torch.device) -> StreamingData:
        self.device = torch.device(device)
        self.cls, self.ctc, self.ctc_len, self.glyph_ok = (t.to(device) for t in (self.cls, self.ctc, self.ctc_len,
                                                                                  self.glyph_ok))
        return self

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.cls, self.ctc, self.ctc_len, self.glyph_ok))

    def assemble(self, raw: dict[str, np.ndarray], idx: torch.Tensor) -> dict:
        t = {k: torch.as_tensor(v).to(self.device, non_blocking=True) for k, v in raw.items()}  # the loader converts
        idx = idx.to(self.device)
        return {"lr": rgbm(t["lr"]), "hr": rgbm(t["hr"]), "line": t["line"].float() / 4, "char": t["char"].float() / 4,
                "cls": self.cls[idx], "ctc": (self.ctc[idx], self.ctc_len[idx]), "glyph_ok": self.glyph_ok[idx],
                "labels": [self.labels[i] for i in idx.tolist()]}

    def batch(self, idx: torch.Tensor) -> dict:
        return self.assemble(self.records[idx.cpu().numpy()], idx)

    def batches(self, index_lists):
        """Prefetched batches for an iterable of index tensors, in order (DataLoader workers, spawned)."""
        lists = iter(index_lists)
        if self.workers <= 0:
            for idx in lists:
                yield self.batch(idx)
            return
        pending: list[torch.Tensor] = []

        def sampler():
            for idx in lists:
                pending.append(idx)
                yield idx.cpu().numpy()

        loader = torch.utils.data.DataLoader(self.records, batch_size=None, sampler=sampler(),
                                             num_workers=self.workers, multiprocessing_context="spawn",
                                             prefetch_factor=2)
        for raw in loader:
            yield self.assemble(raw, pending.pop(0))
