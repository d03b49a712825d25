"""The dask client factory: a local cluster, SLURM workers, or an existing cluster.

Cluster settings come from the workflow config (``cluster:`` section), not from
code, in the spirit of dask-jobqueue.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


def with_log_directory(cfg: Mapping[str, Any], results: str) -> dict[str, Any]:
    """The cluster settings with SLURM worker job logs under
    ``<results>/logs/slurm`` when ``slurm.log_directory`` is unset: sbatch
    would otherwise write ``slurm-N.out`` into the directory the job was
    submitted from (the checkout)."""
    import os

    out = dict(cfg)
    slurm = dict(out.get("slurm") or {})
    if not slurm.get("log_directory"):
        slurm["log_directory"] = os.path.join(results, "logs", "slurm")
    out["slurm"] = slurm
    return out


@contextmanager
def dask_client(cfg: Mapping[str, Any], threads: int = 1) -> Iterator[Any]:
    """A dask client for cfg['kind']: local, slurm or scheduler_file."""
    import dask

    kind = cfg.get("kind", "local")
    # the scheduler runs here (local, slurm): an image whose workers die this
    # many times more becomes an error row, see biocodes.repository.shard
    retries = {"distributed.scheduler.allowed-failures": cfg.get("allowed_failures", 3)}
    with dask.config.set(retries):
        yield from _client(kind, cfg, threads)


def _client(kind: str, cfg: Mapping[str, Any], threads: int) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if kind == "scheduler_file":
        with Client(scheduler_file=cfg["scheduler_file"]) as client:
            yield client
        return
    if kind == "local":
        cluster = LocalCluster(
            n_workers=max(1, threads),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit=cfg.get("memory_limit", "auto"),
        )
    elif kind == "slurm":
        cluster = _slurm_cluster(cfg.get("slurm", {}))
    else:
        raise ValueError(f"unknown cluster kind {kind!r}")
    with cluster, Client(cluster) as client:
        yield client


def _slurm_cluster(s: Mapping[str, Any]):
    from dask_jobqueue import SLURMCluster

    walltime = s.get("walltime", "01:00:00")
    cluster = SLURMCluster(
        cores=s.get("cores", 1),
        processes=s.get("processes", 1),
        memory=s.get("memory", "4GB"),
        walltime=walltime,
        queue=s.get("queue"),
        account=s.get("account"),
        job_extra_directives=list(s.get("extra_directives", [])),
        worker_extra_args=[
            "--lifetime",
            s.get("lifetime", "55m"),
            "--lifetime-stagger",
            s.get("lifetime_stagger", "4m"),
        ],
        interface=s.get("interface"),
        log_directory=s.get("log_directory"),
        scheduler_options={"dashboard_address": None},
    )
    cluster.adapt(minimum=s.get("min_workers", 0), maximum=s.get("max_workers", 4))
    return cluster
