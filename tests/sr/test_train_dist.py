"""The trainer's agreements between torchrun ranks, with two real gloo processes on the CPU: a non-finite loss on one
rank is seen by every rank, and every rank takes rank 0's training clock."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from glyphsr.sr.train.loop import Trainer


def _rank(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        me = SimpleNamespace(world=2, device=torch.device("cpu"), train_time=10.0 + 5 * rank, _clock=0.0)
        nan_on_one = Trainer._nonfinite(me, torch.tensor(float("nan") if rank == 1 else 1.0))
        finite = Trainer._nonfinite(me, torch.tensor(2.0 + rank))
        Trainer._synced_clock(me)
        Path(out, f"{rank}.json").write_text(json.dumps([nan_on_one, finite, me.train_time, me._clock]))
    finally:
        dist.destroy_process_group()


def test_ranks_agree_on_skipped_steps_and_on_the_clock(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(f"file://{tmp_path / 'rendezvous'}", str(tmp_path)), nprocs=2, join=True)
    got = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    assert got[0] == got[1] == [True, False, 10.0, 10.0]  # rank 1's NaN skips the step on rank 0 too
