"""Where a Dask job runs: a local cluster (one single-threaded worker process per core, or one per GPU pinned
with ``CUDA_VISIBLE_DEVICES``), or an existing scheduler. Nothing here knows what the tasks do.

``with open_cluster(scheduler=..., workers=..., gpus=..., dashboard=...) as c:`` gives a :class:`Cluster`:
the Dask client, the resources each task asks for (``{"GPU": 1}`` on GPU workers), torch threads per task and a
line saying where it runs. The cluster is closed on exit; an existing scheduler's cluster is left running.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass


class ClusterError(Exception):
    """The cluster asked for cannot be had (no such scheduler, no workers, GPUs that are not there)."""


def visible_gpus() -> list[str]:
    """Ids to put in each GPU worker's CUDA_VISIBLE_DEVICES: the ones this process sees."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [x.strip() for x in env.split(",") if x.strip()] if env else [str(i) for i in range(count)]
    return ids[:count]


def check_gpus(gpus: list[str]) -> None:
    """Refuse GPU ids on a machine where this process sees no CUDA device (the workers would run on the CPU)."""
    if gpus and not visible_gpus():
        raise ClusterError(f"GPU workers asked for ({','.join(gpus)}), but no CUDA device is visible here; "
                           "use --gpus none (or leave --gpus out) for CPU workers")


def local_cluster(workers: int | None, gpus: list[str], dashboard: str, memory_limit: str = "auto"):
    """GPUs: one worker process per GPU pinned with CUDA_VISIBLE_DEVICES, resources GPU=1, one thread.
    Otherwise ``workers`` (default: one per core) single-threaded CPU worker processes."""
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    if gpus:
        specs = {f"gpu-{g}": {"cls": Nanny, "options": {
            "nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": g}, "resources": {"GPU": 1},
            "memory_limit": memory_limit, "silence_logs": logging.ERROR}} for g in gpus}
        return SpecCluster(workers=specs, scheduler={"cls": Scheduler, "options": {"dashboard_address": dashboard}},
                           silence_logs=logging.ERROR)
    n = workers or os.cpu_count() or 1
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=dashboard,
                        memory_limit=memory_limit, silence_logs=logging.ERROR)


@dataclass
class Cluster:
    client: object  # distributed.Client
    resources: dict | None  # what each task asks for: {"GPU": 1} on GPU workers
    threads: int  # torch intra-op threads per task
    where: str  # e.g. "2 CPU workers", "4 workers at tcp://host:8786"
    gpu: bool  # tasks run on GPU workers


def _connect(scheduler: str):
    import dask
    from distributed import Client

    try:
        client = Client(scheduler, timeout=dask.config.get("distributed.comm.timeouts.connect"))
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
    info = client.scheduler_info()["workers"]
    if not info:
        client.close()
        raise ClusterError(f"the Dask scheduler at {scheduler} has no workers")
    gpu = any(w.get("resources", {}).get("GPU") for w in info.values())
    return Cluster(client, {"GPU": 1} if gpu else None, 1, f"{len(info)} workers at {scheduler}", gpu)


@contextlib.contextmanager
def open_cluster(*, scheduler: str | None = None, workers: int | None = None, gpus: list[str] | None = None,
                 dashboard: str = ":8787") -> Iterator[Cluster]:
    """An existing scheduler when ``scheduler`` names one; otherwise a local cluster of ``gpus`` (default: every
    visible GPU; ``[]`` for CPU workers) or, without GPUs, ``workers`` CPU processes (default: one per core)."""
    from distributed import Client

    if scheduler:
        c = _connect(scheduler)
        try:
            yield c
        finally:
            c.client.close()
        return
    if gpus is None:
        gpus = visible_gpus()
    check_gpus(gpus)
    n_procs = len(gpus) if gpus else (workers or os.cpu_count() or 1)
    threads = 1 if gpus else max(1, (os.cpu_count() or 1) // n_procs)
    with local_cluster(workers, gpus, dashboard) as cluster, Client(cluster) as client:
        yield Cluster(client, {"GPU": 1} if gpus else None, threads,
                      f"{n_procs} {'GPU' if gpus else 'CPU'} workers", bool(gpus))
