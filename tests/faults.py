"""Helpers for the fault tests: a repository with one slow image, a workflow
runner that can be interrupted, and a way to find the process that holds a
file open (the worker processing that image)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import yaml

from biocodes import synth

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
#: columns that say who ran what and when, not what was found
RUN_METADATA = {"run_id", "worker", "slurm_job_id"}
BIG = "big.ome.tif"


def fault_repo(root: Path, small: int = 6) -> Path:
    """Small images plus one 512 MiB uncompressed OME-TIFF that takes a worker
    about a second: long enough to be caught holding it."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(small):
        a = synth.random_scene((1, 1, 2, 32, 32), "uint16", seed=100 + i)
        synth.write_ome_tiff(root / f"small-{i}.ome.tif", a)
    big = np.zeros((1, 1, 32, 4096, 4096), np.uint8)
    big += np.arange(32, dtype=np.uint8)[None, None, :, None, None]
    big[..., ::7, ::5] = 200
    synth.write_ome_tiff(root / BIG, big)
    return root


def write_config(tmp: Path, repo: Path, results: str = "results", **extra) -> Path:
    config = {
        "roots": {"repo": str(repo)},
        "results": str(tmp / results),
        "example": {"generate": False},
        "shards": 2,
        "threads": 1,
        "views": {"enabled": False},
        **extra,
    }
    cfg = tmp / f"{results}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return cfg


def snakemake(cfg: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [SNAKEMAKE, "--configfile", str(cfg), "--nolock", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def holder(path: Path, timeout: float = 300) -> psutil.Process:
    """The first process seen with ``path`` open (polls)."""
    target = str(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in psutil.process_iter(["name"]):
            if not (p.info["name"] or "").startswith("python"):
                continue
            try:
                if any(f.path == target for f in p.open_files()):
                    return p
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.01)
    raise TimeoutError(f"no process opened {path} within {timeout} s")


def rows(results: Path, name: str) -> list[dict]:
    table = pq.read_table(results / "catalogue" / name).to_pylist()
    return [{k: v for k, v in r.items() if k not in RUN_METADATA} for r in table]
