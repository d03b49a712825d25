"""Faults: a worker killed mid-image, a worker over its memory limit, an
interrupted Snakemake, a merge killed mid-write. Nothing is lost, nothing is
half written, and the catalogue ends as an undisturbed run's."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from catalogues import catalogue_files
from faults import (
    BIG,
    fault_repo,
    finish,
    holder,
    rows,
    snakemake,
    write_config,
)

from biocodes.repository.tables import TABLES


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return fault_repo(tmp_path_factory.mktemp("faults") / "repo")


@pytest.fixture(scope="module")
def undisturbed(repo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("undisturbed")
    finish(snakemake(write_config(tmp, repo)))
    return tmp / "results"


def test_sigkill_of_a_local_worker_mid_image(repo, undisturbed, tmp_path):
    proc = snakemake(write_config(tmp_path, repo))
    victim = holder(repo / BIG)
    cmdline = " ".join(victim.cmdline())
    assert "multiprocessing" in cmdline, cmdline  # a dask worker, not the job
    victim.send_signal(signal.SIGKILL)
    out = finish(proc)
    results = tmp_path / "results"
    for name in ("images", "scenes", "errors", "duplicates"):
        assert rows(results, name) == rows(undisturbed, name), name
    statuses = {r["path"]: r["status"] for r in rows(results, "images")}
    assert set(statuses.values()) == {"ok"} and BIG in statuses
    assert "7 images (7 ok, 0 failed)" in out


def test_worker_over_its_memory_limit_is_reported_as_such(tmp_path):
    import tifffile

    from biocodes import synth
    from biocodes.repository.manifest import build_manifest
    from biocodes.repository.shard import run_shard

    root = tmp_path / "repo"
    root.mkdir()
    # one 16384 x 16384 uint16 plane (512 MiB, a sparse file of zeros): the
    # worker holds it as pixels and as bytes, over a 600 MB limit
    tifffile.imwrite(root / "wide.tif", shape=(16384, 16384), dtype=np.uint16)
    synth.write_tiff(root / "small.tif", synth.random_scene((1, 1, 1, 16, 16)))
    manifest = tmp_path / "manifest.parquet"
    build_manifest(manifest, {"repo": str(root)}, 1)
    cluster = {"kind": "local", "memory_limit": "600MB", "allowed_failures": 0}
    counts = run_shard(manifest, 0, tmp_path / "state", cluster, simprints=False)
    assert counts["read"] == 2
    images = {
        r["path"]: r
        for r in pq.read_table(tmp_path / "state/images.parquet").to_pylist()
    }
    assert images["small.tif"]["status"] == "ok"
    assert images["wide.tif"]["status"] == "error"
    errors = pq.read_table(tmp_path / "state/errors.parquet").to_pylist()
    assert [(e["path"], e["error_type"], e["stage"]) for e in errors] == [
        ("wide.tif", "out_of_memory", "worker")
    ]
    assert "exceeded its memory limit (572.20 MiB)" in errors[0]["message"]


def test_interrupted_snakemake_resumes_to_a_byte_identical_catalogue(repo, tmp_path):
    env = {"SOURCE_DATE_EPOCH": "1795305600"}  # fixes the run id and times
    cfg = write_config(tmp_path, repo, shards=4)
    results = tmp_path / "results"
    finish(snakemake(cfg, env=env))
    reference = catalogue_files(results / "catalogue")
    shutil.rmtree(results)

    proc = snakemake(cfg, env=env)
    deadline = time.monotonic() + 600
    while not list(results.glob("shards/*.json")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out[-3000:]
    done = {p.name: p.stat().st_mtime_ns for p in results.glob("shards/*.json")}
    assert 0 < len(done) < 4, (done, out[-3000:])
    assert not (results / "catalogue").exists()

    out = finish(snakemake(cfg, env=env))
    for name, mtime in done.items():  # finished shards were not redone
        assert (results / "shards" / name).stat().st_mtime_ns == mtime
    assert out.count("rule fingerprint:") == 4 - len(done)
    assert catalogue_files(results / "catalogue") == reference


KILL_MERGE = """
import os, signal, sys
import biocodes.infra.atomic as atomic
import biocodes.repository.catalogue as catalogue
from biocodes.repository.manifest import build_manifest

results, repo, when = sys.argv[1], sys.argv[2], sys.argv[3]
build_manifest(f"{results}/m.parquet", {"repo": repo}, 2)
written = []
real_write, real_replace = catalogue.write_atomic, atomic.os.replace

def write(table, path):
    # the second table file the merge writes (most partitions are the shard
    # jobs' files, linked: few are written)
    if when == "mid-table" and len(written) == 1:
        with open(f"{path}.partial", "wb") as f:  # half a table on disk
            f.write(b"PAR1" + b"\\0" * 1000)
        os.kill(os.getpid(), signal.SIGKILL)
    written.append(path)
    return real_write(table, path)

def replace(src, dst):
    if when == "before-swap" and str(dst).endswith("catalogue"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)

catalogue.write_atomic, atomic.os.replace = write, replace
states = [f"{results}/state/0", f"{results}/state/1"]
catalogue.merge_run(states, f"{results}/catalogue", {}, f"{results}/m.parquet")
"""


@pytest.mark.parametrize("when", ["mid-table", "before-swap", "no-kill"])
def test_merge_killed_mid_write_keeps_the_previous_catalogue(
    repo, undisturbed, tmp_path, when
):
    results = tmp_path / "results"
    shutil.copytree(undisturbed, results, symlinks=True)
    before = catalogue_files(results / "catalogue")
    proc = subprocess.run(
        [sys.executable, "-c", KILL_MERGE, str(results), str(repo), when],
        capture_output=True,
        text=True,
        timeout=300,
    )
    runs = pq.read_table(results / "catalogue/runs").to_pylist()
    if when == "no-kill":  # the same merge, undisturbed, does replace it
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert len(runs) == 2
        return
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # every table readable and exactly as before
    assert catalogue_files(results / "catalogue") == before
    for name in TABLES:
        pq.read_table(results / f"catalogue/{name}")
    assert len(runs) == 1
