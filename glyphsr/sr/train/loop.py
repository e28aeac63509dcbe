"""The training loop: one process, or one rank of ``torchrun`` (DistributedDataParallel).

``Trainer(config, data, out_dir, device, val_sets=..., judge=..., callback=...)``, then ``run()``. Nothing here
prints: events go to ``callback(event: dict)`` (kinds ``start``, ``train``, ``val``, ``checkpoint``, ``skip``,
``end``) and to ``out_dir/metrics.jsonl``; the command line renders them.

- Every epoch is a permutation of the training samples drawn from a generator seeded by (seed, epoch), so a resumed
  run sees the same batches; under DDP the global batch is ``batch x world`` and rank r takes its r-th share.
- Learning rate: linear warm-up, then cosine to ``min_lr_ratio`` (or constant), as a function of the step; with
  ``time_budget_s`` the progress is the larger of the step fraction and the time fraction.
- Precision: ``auto`` is bf16 autocast where the device computes bf16 natively (CUDA from Ampere on; CPUs with
  AVX512-BF16 or AMX: 9.5 against 5.6 samples/s in fp32 at batch 48 on the 2-core EPYC here), fp32 elsewhere;
  the weights, the optimizer and the EMA stay fp32. Adam is fused on CUDA.
- A non-finite loss skips the optimizer step (the gradients are dropped) and is counted; ``max_bad_steps`` in a
  row stop the run with :class:`TrainingDiverged`, leaving the last good checkpoint as it was.
- EMA (``ema`` decay): an average of the weights kept beside them, checkpointed and validated too.
- Checkpoints: ``checkpoints/last`` every ``ckpt_every`` steps and at the end; ``checkpoints/best`` after a
  validation that improves the weighted average accuracy of the raw weights or of their EMA, whichever reads better
  (``read_best`` in its metadata says which; rank 0 only). On an H200 (2026-11-28) the EMA read best a third of
  the way into a 5-minute run and fell below bicubic by its end, so the run's best is often not its last.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.profiler import record_function

from glyphsr._version import code_version
from glyphsr.sr.checkpoint import load_state, read_resume, read_weights, write_checkpoint
from glyphsr.sr.evaluation import EvalSet, evaluate, summary
from glyphsr.sr.losses import CRNNTextFocus, GlyphSRLoss
from glyphsr.sr.modeling import build_model
from glyphsr.sr.runtime import cuda_setup, use_bf16
from glyphsr.sr.train.config import RunConfig
from glyphsr.sr.train.data import TrainTensors, add_text_focus_targets


class TrainingDiverged(RuntimeError):
    """Several non-finite losses in a row."""


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) under torchrun, (0, 1, 0) otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def lr_factor(cfg, step: int, total: int, steps_per_epoch: int, time_frac: float | None = None) -> float:
    """The learning rate's multiplier at ``step``: linear warm-up, then cosine (or constant). With a time budget,
    ``time_frac`` (training time / budget) moves the cosine on when the clock runs ahead of the steps."""
    warm = cfg.warmup_steps if cfg.warmup_steps is not None else round(cfg.warmup_epochs * steps_per_epoch)
    warm = min(warm, max(total - 1, 0))
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    p = (step - warm) / max(total - warm, 1)
    if time_frac is not None:
        p = max(p, time_frac)
    p = min(max(p, 0.0), 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))


class Trainer:
    def __init__(self, config: RunConfig, data: TrainTensors, out_dir: str | os.PathLike,
                 device: torch.device | str = "cpu", *, val_sets: Sequence[EvalSet] = (), judge=None,
                 cal_sets: Sequence[EvalSet] = (), callback: Callable[[dict], None] | None = None, resume: bool = False,
                 init_weights: str | os.PathLike | dict | None = None, criterion: GlyphSRLoss | None = None,
                 init_record: dict | None = None):
        self.cfg = config
        self.tc = config.train
        self.device = torch.device(device)
        cuda_setup(self.device)
        self.out = Path(out_dir)
        self.rank, self.world, _ = dist_info()
        self.callback = callback or (lambda event: None)
        self.val_sets = list(val_sets)
        self.cal_sets = list(cal_sets)  # training pairs the residual gain is judged on (train.calibrate_n)
        self._subsets: dict[int | None, list[EvalSet]] = {}
        self.judge = judge
        # what --init started from (sr-train's record of those weights), kept in every checkpoint's metadata
        self.init_record = init_record
        torch.manual_seed(self.tc.seed)
        self.model = build_model(config.model).to(self.device)
        if init_weights is not None:  # continue from other weights (e.g. the shipped ones): a new run; a path, or
            # the state dict a caller has read and checked already (sr-train's --init)
            state = init_weights if isinstance(init_weights, dict) else read_weights(init_weights)[0]
            load_state(self.model, state, "--init weights" if isinstance(init_weights, dict) else str(init_weights))
        self.crit = (criterion or GlyphSRLoss(config.loss)).to(self.device)
        self.data = data.to(self.device)
        self.autocast = use_bf16(self.tc.precision, self.device)
        # in the step's precision, as a streaming set computes them per step; bf16 halves the time on the project's
        # 2-core CPU (20,000 HR images took 5.5 minutes in fp32; the argmax agrees at 99.96% of the steps)
        add_text_focus_targets(self.data, self.crit.text_focus, bf16=self.autocast, progress=lambda done, total:
                               self.callback({"kind": "prepare", "what": "text-focus targets", "done": done,
                                              "total": total}))
        params = [p for p in self.model.parameters() if p.requires_grad]
        kw = {"fused": True} if self.device.type == "cuda" else {}
        self.opt = torch.optim.Adam(params, lr=self.tc.lr, betas=tuple(self.tc.betas),
                                    weight_decay=self.tc.weight_decay, **kw)
        self.ema = None
        if self.tc.ema:
            self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.net: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if self.tc.compile:
            from torch._dynamo import config as dynamo_config

            # dynamo refuses recurrent modules unless told (a graph break at each, the GRUs' and the CRNN TPG's
            # LSTMs); told, it puts the native ones into the graph as single operations and traces the scanned
            # GRUs' steps (GLYPHSR_GRU=scan), which inductor can fuse. A process-wide setting, left on.
            dynamo_config.allow_rnn = True
            self.net = torch.compile(self.net)
        n = len(self.data)
        self.global_batch = self.tc.batch * self.world
        if n < self.global_batch:
            raise ValueError(f"{n} training samples cannot fill one batch of {self.tc.batch} x {self.world} "
                             f"process(es): lower --batch")
        self.steps_per_epoch = n // self.global_batch
        self.total_steps = self.tc.steps or self.tc.epochs * self.steps_per_epoch
        self.step = 0
        self.bad_in_row = 0
        self.skipped = 0
        self.best: float | None = None
        self.best_weights = "raw"  # which weights read self.best: raw or ema
        self.train_time = 0.0
        self.history: list[dict] = []
        self._saved_buffers: list[torch.Tensor] = []
        self._next_val_s = self.tc.val_every_s or 0.0
        self._stream = None  # prefetched batches of a streaming data set during run()
        if resume:
            self._load_resume(self.out / "checkpoints" / "last")

    # -- state ------------------------------------------------------------------------------------------------------
    def _meta(self) -> dict:
        return {"config": self.cfg.to_dict(), "step": self.step, "samples": self.step * self.global_batch,
                "epoch": self.step / self.steps_per_epoch, "train_time_s": round(self.train_time, 2),
                "code_version": code_version(), "best": self.best, "best_weights": self.best_weights,
                **({"init": self.init_record} if self.init_record else {})}

    def _resume_state(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "step": self.step, "best": self.best,
                "best_weights": self.best_weights, "skipped": self.skipped, "train_time": self.train_time,
                "rng_cpu": torch.get_rng_state(), "config": json.dumps(self.cfg.to_dict()),
                "code_version": code_version()}

    def _load_resume(self, path: Path) -> None:
        state, meta = read_weights(path)
        saved = json.loads(read_resume(path)["config"])
        if saved["model"] != json.loads(json.dumps(self.cfg.to_dict()))["model"]:
            raise ValueError(f"{path} was trained with another network configuration; resume with the run's own "
                             "configuration (it is in the run folder's config.yaml)")
        load_state(self.model, state, str(path))
        if self.ema is not None:
            try:
                ema, _ = read_weights(path, "ema")
                self.ema = {k: v.to(self.device) for k, v in ema.items()}
            except Exception:  # noqa: BLE001 - a run that turned EMA on later starts it from the weights
                self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        r = read_resume(path)
        self.opt.load_state_dict(r["optimizer"])
        self.step, self.best, self.skipped = int(r["step"]), r["best"], int(r["skipped"])
        self.best_weights = r.get("best_weights", "raw")  # checkpoints before 2026-11-28 kept the raw weights'
        self.train_time = float(r["train_time"])
        torch.set_rng_state(r["rng_cpu"])
        # what the run started from is what its checkpoint says (--init weights, or none: from scratch)
        self.init_record = meta["init"] if isinstance(meta.get("init"), dict) else None

    def save(self, name: str = "last") -> Path:
        if self.rank != 0:
            return self.out
        ema = self.ema
        meta = self._meta()
        if name == "best":  # which of this checkpoint's weights read best: sr-infer and sr-export say so
            meta["read_best"] = self.best_weights
        path = write_checkpoint(self.out / "checkpoints" / name, self.model.state_dict(), meta,
                                ema_state=ema, resume=self._resume_state())
        self._event({"kind": "checkpoint", "name": name, "path": str(path)})
        return path

    # -- events -----------------------------------------------------------------------------------------------------
    def _event(self, event: dict) -> None:
        if self.rank != 0:
            return
        event = {"step": self.step, "samples": self.step * self.global_batch, "time": round(self.train_time, 3),
                 **event}
        if event["kind"] in ("train", "val", "skip", "calibrate", "end"):
            self.history.append(event)
            self.out.mkdir(parents=True, exist_ok=True)
            with (self.out / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(event) + "\n")
        self.callback(event)

    # -- one step ---------------------------------------------------------------------------------------------------
    def _indices(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        g = torch.Generator().manual_seed(self.tc.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.data), generator=g)
        start = pos * self.global_batch + self.rank * self.tc.batch
        return perm[start:start + self.tc.batch].to(self.device)

    def _set_lr(self, time_frac: float | None) -> float:
        f = lr_factor(self.tc, self.step, self.total_steps, self.steps_per_epoch, time_frac)
        for g in self.opt.param_groups:
            g["lr"] = self.tc.lr * f
        return self.tc.lr * f

    def train_step(self, time_frac: float | None = None) -> dict[str, torch.Tensor] | None:
        self.net.train()
        self.crit.train()
        lr_now = self._set_lr(time_frac)
        b = next(self._stream) if self._stream is not None else self.data.batch(self._indices(self.step))
        buffers = list(self.model.buffers())
        if len(self._saved_buffers) != len(buffers):
            self._saved_buffers = [v.clone() for v in buffers]
        else:  # BatchNorm statistics move in the forward pass: a skipped step puts them back
            torch._foreach_copy_(self._saved_buffers, buffers)
        glyph_ok = b["glyph_ok"] if self.tc.glyph_records == "ok" else None
        tf = {}
        if isinstance(self.crit.text_focus, CRNNTextFocus):  # targets computed once instead of per step
            tf["ctc_targets"] = b["ctc"]
            if "tf_target" in b:
                tf["target_p"] = b["tf_target"]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            with record_function("glyphsr.forward"):  # the phases, named in torch.profiler's tables
                out = self.net(b["lr"])
            with record_function("glyphsr.loss"):
                terms = self.crit(out, b["hr"], b.get("labels"), b["line"], b["char"], cls_t=b["cls"],
                                  glyph_valid=glyph_ok, **tf)
        loss = terms["total"]
        self.opt.zero_grad(set_to_none=True)
        with record_function("glyphsr.backward"):
            loss.backward()
        if self._nonfinite(loss):  # queued backward keeps the device busy meanwhile
            self.opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                torch._foreach_copy_(buffers, self._saved_buffers)
            self.skipped += 1
            self.bad_in_row += 1
            self._event({"kind": "skip", "loss": float("nan"), "skipped": self.skipped})
            if self.bad_in_row >= self.tc.max_bad_steps:
                raise TrainingDiverged(f"{self.bad_in_row} non-finite losses in a row at step {self.step}; the last "
                                       f"checkpoint ({self.out / 'checkpoints' / 'last'}) is intact. Lower train.lr "
                                       "or set train.grad_clip.")
            self.step += 1
            return None
        self.bad_in_row = 0
        with record_function("glyphsr.optimizer"):
            if self.tc.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
            self.opt.step()
            if self.ema is not None:
                self._update_ema()
        self.step += 1
        terms = {k: v.detach() for k, v in terms.items()}
        terms["lr"] = torch.tensor(lr_now)
        return terms

    def _nonfinite(self, loss: torch.Tensor) -> bool:
        """Whether the step's loss is NaN or infinite, on any rank: under DDP every rank skips the same steps, since
        the gradients they all-reduced carry one rank's NaN to all of them."""
        if self.world == 1:
            return not math.isfinite(loss.item())
        flag = (~torch.isfinite(loss.detach().float())).float().reshape(1)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _synced_clock(self) -> None:
        """Under DDP, every rank takes rank 0's training time (at log points, where they synchronize anyway), so that
        a time budget's learning rate and last step are the same on every rank. Rank 0's, not the slowest's: the
        other ranks wait in an all-reduce while rank 0 alone validates and writes checkpoints, and that wait is not
        training (rank 0 waits for slower ranks in every step's all-reduce, so its clock includes them)."""
        t = torch.tensor([self.train_time], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        self.train_time = self._clock = float(t.item())

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = self.tc.ema
        state = self.model.state_dict()
        floats = [k for k, v in self.ema.items() if v.is_floating_point()]
        torch._foreach_lerp_([self.ema[k] for k in floats], [state[k].detach() for k in floats], 1 - d)
        for k, v in self.ema.items():
            if not v.is_floating_point():
                v.copy_(state[k])

    # -- validation -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, limit: int | None = None) -> dict | None:
        if self.rank != 0 or not self.val_sets or self.judge is None:
            return None
        if limit not in self._subsets:  # one subset object per limit: its bicubic and HR rows are judged once
            self._subsets[limit] = [s.subset(limit) for s in self.val_sets]
        sets = self._subsets[limit]
        self.model.eval()

        def sr_fn(x: torch.Tensor) -> torch.Tensor:
            return self.model(x).sr

        res = summary(evaluate(sr_fn, sets, self.judge, self.device, autocast=self.autocast))
        if self.ema is not None:
            ema_res = self._judge_state(self.ema, sets)
            res["ema"] = {"sets": {n: v["sr"] for n, v in ema_res["sets"].items()},
                          "average": ema_res["average"].get("sr"),
                          # the EMA against bicubic image by image, as the raw weights are (fixed, broken, p)
                          "versus_bicubic": {n: v["sr"] for n, v in ema_res.get("versus_bicubic", {}).items()}}
        self.model.train()
        return res

    def _validate_and_keep_best(self, final: bool = False) -> None:
        res = self.validate(None if final else self.tc.val_limit)
        if res is None:
            return
        acc = res["average"].get("sr", float("nan"))
        ema_acc = (res.get("ema") or {}).get("average")
        readings = [(a, w) for a, w in ((acc, "raw"), (ema_acc, "ema")) if a is not None and not math.isnan(a)]
        top, which = max(readings, key=lambda r: r[0]) if readings else (float("nan"), "raw")
        improved = not math.isnan(top) and (self.best is None or math.isnan(self.best) or top > self.best)
        if improved:
            self.best, self.best_weights = top, which
        self._event({"kind": "val", "final": final, "results": res, "accuracy": acc, "ema_accuracy": ema_acc,
                     "best": self.best, "best_weights": self.best_weights})
        if improved:
            self.save("best")

    # -- the residual gain ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self) -> dict | None:
        """At the end of a run (``train.calibrate_n`` > 0, rank 0, a judge and training pairs to judge on): the
        weights of ``checkpoints/best`` (those that read best there, raw or EMA) and the last weights (their EMA when
        kept) at each gain of ``train.calibrate_gains`` on those training pairs (:mod:`glyphsr.sr.calibrate`); the
        pair that reads best is written, the gain applied, as ``checkpoints/calibrated`` and validated on the
        validation sets. Returns what is recorded (the ``calibrate`` event), or None when nothing was calibrated."""
        from glyphsr.sr.calibrate import calibrate, with_gain

        tc = self.tc
        if self.rank != 0 or not tc.calibrate_n or not self.cal_sets or self.judge is None:
            return None
        self._event({"kind": "calibrating", "n": sum(len(s) for s in self.cal_sets), "gains": list(tc.calibrate_gains)})
        candidates: dict[str, dict[str, torch.Tensor]] = {}
        origin: dict[str, dict] = {}
        metas = {"last": self._meta()}  # what each candidate's weights are: step, samples, time
        best = self.out / "checkpoints" / "best"
        if best.exists():
            which = "ema" if self.best_weights == "ema" else "model"
            state, metas["best"] = read_weights(best, which)
            candidates["best"] = state
            origin["best"] = {"checkpoint": "best", "weights": "ema" if which == "ema" else "raw",
                              "step": metas["best"].get("step")}
        candidates["last"] = {k: v.detach().clone() for k, v in (self.ema or self.model.state_dict()).items()}
        origin["last"] = {"checkpoint": "last", "weights": "ema" if self.ema is not None else "raw", "step": self.step}
        cal = calibrate(self.model, candidates, self.cal_sets, self.judge, self.device, tc.calibrate_gains,
                        autocast=self.autocast)
        state = with_gain(candidates[cal["choice"]], cal["gain"])
        # the chosen weights' own step, samples and time; "best" and its weights describe the best checkpoint, not
        # this one
        meta = {k: v for k, v in metas[cal["choice"]].items() if k not in ("best", "best_weights", "read_best")}
        record = {"residual_gain": cal["gain"], "calibrated_from": origin[cal["choice"]],
                  "calibration": {"n": cal["n"], "on": [s.name for s in self.cal_sets], "bicubic": cal["bicubic"],
                                  "accuracy": cal["accuracy"],
                                  "table": {name: {f"{g:g}": a for g, a in row.items()}
                                            for name, row in cal["table"].items()},
                                  "from": origin}}
        res = self._judge_state(state, self._subsets.get(None) or self.val_sets) if self.val_sets else None
        if res is not None:
            record["validation"] = res["average"].get("sr")
        write_checkpoint(self.out / "checkpoints" / "calibrated", state, {**meta, **record})
        event = {"kind": "calibrate", **record, "results": res}
        self._event(event)
        return record

    @torch.no_grad()
    def _judge_state(self, state: dict[str, torch.Tensor], sets: Sequence[EvalSet]) -> dict:
        """Other weights (the EMA, calibrated ones) judged on ``sets``; the model's own are put back after."""
        own = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(state)
        self.model.eval()
        try:
            return summary(evaluate(lambda x: self.model(x).sr, sets, self.judge, self.device, autocast=self.autocast))
        finally:
            self.model.load_state_dict(own)
            self.model.train()

    # -- the run ----------------------------------------------------------------------------------------------------
    def run(self, stop_after: int | None = None) -> dict:
        """Train to the configured end (or ``stop_after`` more steps, checkpointed: ``resume`` continues)."""
        tc = self.tc
        self._event({"kind": "start", "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                     "samples": len(self.data), "global_batch": self.global_batch, "world": self.world,
                     "device": str(self.device), "precision": "bf16" if self.autocast else "fp32",
                     "data_bytes": self.data.nbytes()})
        if self.step == 0 and self.val_sets:
            self._validate_and_keep_best()
        end = self.total_steps if stop_after is None else min(self.total_steps, self.step + stop_after)
        if hasattr(self.data, "batches"):  # streaming from the LMDB: workers read ahead, one batch per step
            self._stream = self.data.batches(self._indices(s) for s in itertools.count(self.step))
        try:
            return self._run(tc, end)
        finally:
            if self._stream is not None:
                self._stream.close()
                self._stream = None

    def _run(self, tc, end: int) -> dict:
        acc: dict[str, torch.Tensor] = {}
        n_acc = 0
        t_log = time.perf_counter()
        steps_log = 0
        # the clock the schedule follows: this process's training time, or under DDP the ranks' common one, which
        # moves at log points only (every rank must take the same learning rate and stop at the same step)
        self._clock = self.train_time
        while self.step < end:
            t0 = time.perf_counter()
            clock = self.train_time if self.world == 1 else self._clock
            time_frac = clock / tc.time_budget_s if tc.time_budget_s else None
            if time_frac is not None and time_frac >= 1.0:
                break
            terms = self.train_step(time_frac)
            if terms is not None:
                for k, v in terms.items():
                    acc[k] = acc.get(k, 0) + v.float()
                n_acc += 1
            steps_log += 1
            if self.step % tc.log_every == 0 or self.step == end:
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                now = time.perf_counter()
                self.train_time += now - t0
                if self.world > 1 and tc.time_budget_s:
                    self._synced_clock()
                rate = steps_log * self.global_batch / max(now - t_log, 1e-9)
                means = {k: round(float(v) / max(n_acc, 1), 6) for k, v in acc.items()}
                self._event({"kind": "train", "loss": means, "samples_per_s": round(rate, 2),
                             "epoch": round(self.step / self.steps_per_epoch, 4),
                             "max_memory_gb": round(torch.cuda.max_memory_allocated(self.device) / 1e9, 3)
                             if self.device.type == "cuda" else None})
                acc, n_acc, steps_log, t_log = {}, 0, 0, time.perf_counter()
            else:
                self.train_time += time.perf_counter() - t0
            due = (tc.val_every and self.step % tc.val_every == 0) or \
                (tc.val_every_s and self.train_time >= self._next_val_s)
            if due and self.step < end:
                self._validate_and_keep_best()
                if tc.val_every_s:
                    self._next_val_s = (self.train_time // tc.val_every_s + 1) * tc.val_every_s
            if tc.ckpt_every and self.step % tc.ckpt_every == 0 and self.bad_in_row == 0:
                self.save("last")
        if steps_log and n_acc:  # the clock ended the run between two log points
            self._event({"kind": "train", "loss": {k: round(float(v) / n_acc, 6) for k, v in acc.items()},
                         "samples_per_s": round(steps_log * self.global_batch / max(time.perf_counter() - t_log, 1e-9),
                                                2), "epoch": round(self.step / self.steps_per_epoch, 4),
                         "max_memory_gb": None})
        finished = self.step >= self.total_steps or bool(tc.time_budget_s and self.train_time >= tc.time_budget_s)
        if finished and self.val_sets:
            self._validate_and_keep_best(final=True)
        self.save("last")
        calibrated, cal_error = None, None
        if finished:
            try:
                calibrated = self.calibrate()
            except Exception as exc:  # noqa: BLE001 - the run is trained and saved: report, and end it as usual
                cal_error = f"{type(exc).__name__}: {exc}"
                self._event({"kind": "calibrate", "error": cal_error})
        result = {"kind": "end", "finished": finished, "skipped": self.skipped, "best": self.best,
                  "train_time_s": round(self.train_time, 2)}
        if calibrated is not None:
            result["calibrated"] = calibrated
        if cal_error is not None:
            result["calibration_error"] = cal_error
        self._event(result)
        return result
