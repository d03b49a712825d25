"""The workflow on a real single-node SLURM cluster (scripts/slurm-local.sh).

Snakemake submits every job with sbatch (profiles/slurm), and the fingerprint
jobs start their dask workers as further SLURM jobs through dask-jobqueue.
Skipped only outside CI, when this machine cannot run SLURM (not root, no apt).
"""

import os
import shutil
import subprocess
import time

import pyarrow.parquet as pq
import pytest
from test_workflow import ROOT, run_workflow

RUN_METADATA = {"run_id", "worker", "slurm_job_id"}
SCRIPT = ROOT / "scripts" / "slurm-local.sh"


def _can_run_slurm() -> str | None:
    if os.geteuid() != 0:
        return "needs root to install and start slurm-wlm and munge"
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        return "needs apt-get to install slurm-wlm"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _can_run_slurm()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"SLURM test must run in CI: {reason}")
        pytest.skip(reason)
    subprocess.run(["bash", SCRIPT, "start"], check=True, timeout=900)
    yield
    subprocess.run(["bash", SCRIPT, "stop"], check=False, timeout=60)


def rows(results, name):
    table = pq.read_table(results / "catalogue" / f"{name}.parquet").to_pylist()
    return [{k: v for k, v in r.items() if k not in RUN_METADATA} for r in table]


@pytest.mark.slurm
def test_slurm_run_equals_local_run(slurm, tmp_path):
    cluster = {
        "kind": "slurm",
        "slurm": {
            "cores": 1,
            "processes": 1,
            "memory": "2GB",
            "walltime": "00:20:00",
            "interface": "lo",
            "min_workers": 1,
            "max_workers": 2,
            # unset: worker job logs go under results/logs/slurm
        },
    }
    from biocodes.example import make_example

    started = time.time()
    make_example(tmp_path / "local" / "repo")
    no_example = {"example": {"generate": False}, "shards": 2, "threads": 1}
    local = run_workflow(tmp_path / "local", no_example)
    assert local.returncode == 0, local.stderr[-3000:]
    (tmp_path / "slurm").mkdir()
    same_repo = {
        "roots": {"repo": str(tmp_path / "local" / "repo")},
    }
    on_slurm = run_workflow(
        tmp_path / "slurm",
        {"cluster": cluster, **no_example, **same_repo},
        "--profile",
        "profiles/slurm",
        "--slurm-logdir",
        str(tmp_path / "slurm/results/logs/snakemake-slurm"),
        "--slurm-keep-successful-logs",  # (deleted on success by default)
    )
    assert on_slurm.returncode == 0, on_slurm.stderr[-3000:]
    assert "submitted with SLURM jobid" in on_slurm.stdout + on_slurm.stderr
    # every log under results/logs: the dask worker jobs' and Snakemake's own
    logs = tmp_path / "slurm/results/logs"
    assert any((logs / "slurm").iterdir()), "no worker job logs"
    assert any(p.is_file() for p in (logs / "snakemake-slurm").rglob("*"))
    assert not [p for p in ROOT.glob("slurm-*.out") if p.stat().st_mtime > started], (
        "a worker job wrote its log into the checkout"
    )

    slurm_results, local_results = (
        tmp_path / "slurm/results",
        tmp_path / "local/results",
    )
    for name in ("images", "scenes", "views", "errors", "duplicates"):
        assert rows(slurm_results, name) == rows(local_results, name), name

    images = pq.read_table(slurm_results / "catalogue/images.parquet").to_pylist()
    job_ids = {r["slurm_job_id"] for r in images}
    assert None not in job_ids
    for job in job_ids:  # MinJobAge=600 keeps finished jobs visible to scontrol
        shown = subprocess.run(
            ["scontrol", "show", "job", job], capture_output=True, text=True, check=True
        ).stdout
        assert "JobName=dask-worker" in shown


@pytest.mark.slurm
def test_scancel_of_a_slurm_worker_mid_image(slurm, tmp_path):
    """dask workers are SLURM jobs; cancelling the one that holds the big image
    loses nothing: adapt() starts a new worker job, the image is read again,
    and the catalogue equals a local run's."""
    from faults import BIG, fault_repo, finish, holder, snakemake, write_config
    from faults import rows as fault_rows

    repo = fault_repo(tmp_path / "repo")
    (tmp_path / "local").mkdir()
    finish(snakemake(write_config(tmp_path / "local", repo)))
    cluster = {
        "kind": "slurm",
        "slurm": {
            "cores": 1,
            "processes": 1,
            "memory": "3GB",
            "walltime": "00:20:00",
            "interface": "lo",
            "min_workers": 1,
            "max_workers": 1,
            "log_directory": str(tmp_path / "workers"),
        },
    }
    (tmp_path / "slurm").mkdir()
    proc = snakemake(write_config(tmp_path / "slurm", repo, cluster=cluster))
    victim = holder(repo / BIG)
    job = victim.environ().get("SLURM_JOB_ID")
    assert job, "the image is being read outside a SLURM job"
    subprocess.run(["scancel", "--signal=KILL", "--full", job], check=True)
    finish(proc)
    shown = subprocess.run(
        ["scontrol", "show", "job", job], capture_output=True, text=True
    ).stdout
    assert "JobState=CANCELLED" in shown, shown
    local, on_slurm = tmp_path / "local/results", tmp_path / "slurm/results"
    for name in ("images", "scenes", "errors", "duplicates"):
        assert fault_rows(on_slurm, name) == fault_rows(local, name), name
    images = pq.read_table(on_slurm / "catalogue/images.parquet").to_pylist()
    big = next(r for r in images if r["path"] == BIG)
    assert big["status"] == "ok" and big["slurm_job_id"] != job
