"""Nightly runs: incremental rereads, changes, removed images, reproducible tables,
duplicates, similar and verify, on a generated repository through the workflow."""

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from test_workflow import run_workflow

from biocodes import synth

RUN_METADATA = {"run_id", "worker", "slurm_job_id"}
NO_EXAMPLE = {"example": {"generate": False}, "shards": 2}


def scene(seed, shape=(1, 2, 3, 64, 80)):
    return synth.structured_scene(shape, "uint16", seed=seed)


def make_repo(repo):
    (repo / "a").mkdir(parents=True)
    (repo / "b").mkdir()
    synth.write_ome_tiff(repo / "a" / "one.ome.tif", scene(1))
    synth.write_ome_zarr(repo / "b" / "one.ome.zarr", scene(1), zarr_format=3)
    synth.write_ome_tiff(repo / "a" / "touch.ome.tif", scene(2))
    synth.write_ome_tiff(repo / "a" / "change.ome.tif", scene(3))
    synth.write_ome_tiff(repo / "a" / "delete.ome.tif", scene(4))
    synth.write_ome_tiff(repo / "a" / "corrupt.ome.tif", scene(5))
    synth.write_tiff(repo / "b" / "plain.tif", scene(6)[0, 0])


def rows(results, name, drop=RUN_METADATA):
    table = pq.read_table(results / "catalogue" / f"{name}.parquet").to_pylist()
    return [{k: v for k, v in r.items() if k not in drop} for r in table]


def run(tmp, extra=None):
    proc = run_workflow(tmp, {**NO_EXAMPLE, **(extra or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nightly")
    repo = tmp / "repo"
    make_repo(repo)
    run(tmp)
    first = {k: rows(tmp / "results", k) for k in ("images", "scenes")}
    # a day in the repository
    synth.write_ome_tiff(repo / "a" / "added.ome.tif", scene(7))
    st = os.stat(repo / "a" / "touch.ome.tif")
    os.utime(repo / "a" / "touch.ome.tif", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    synth.write_ome_tiff(repo / "a" / "change.ome.tif", scene(8))
    (repo / "a" / "delete.ome.tif").unlink()
    data = (repo / "a" / "corrupt.ome.tif").read_bytes()
    (repo / "a" / "corrupt.ome.tif").write_bytes(data[: len(data) // 2])
    second = run(tmp)
    return tmp, first, second


def test_only_changed_added_and_corrupted_images_are_read(nightly):
    tmp, _, proc = nightly
    first, second = rows(tmp / "results", "runs", drop=())
    assert first["images_read"] == 7 and first["images_reused"] == 0
    # touched and changed have the same size: their bytes are re-hashed
    # first; changed is then read, and counted once, as read
    assert second["images_read"] == 3  # added, changed, corrupt
    assert second["images_rehashed"] == 1  # touched (kept)
    assert second["images_reused"] == 3  # one.ome.tif, one.ome.zarr, plain.tif
    assert second["images_removed"] == 1 and second["images"] == 7
    assert "pixels read for 3 images" in proc.stdout + proc.stderr


def test_per_run_figures_count_this_run_only(nightly):
    """bytes_hashed and scenes_read are this run's reads; removed and touched
    are this run's changes; the catalogue's totals are named as totals."""
    from datetime import datetime

    tmp, first_rows, proc = nightly
    first, second = rows(tmp / "results", "runs", drop=())[:2]
    scenes = rows(tmp / "results", "scenes")
    nbytes = {s["path"]: s["nbytes"] for s in scenes if s["status"] == "ok"}
    all_first = sum(s["nbytes"] for s in first_rows["scenes"] if s["status"] == "ok")
    assert first["bytes_hashed"] == first["bytes_total"] == all_first
    # the second run read added and changed (corrupt failed: no pixels)
    read = nbytes["a/added.ome.tif"] + nbytes["a/change.ome.tif"]
    assert second["bytes_hashed"] == read and second["scenes_read"] == 2
    assert second["bytes_total"] == sum(nbytes.values()) != read
    assert second["images_touched"] == 1 and second["images_removed"] == 1
    assert second["images_removed_total"] == 1
    assert isinstance(second["started"], datetime) and second["started"].tzinfo
    assert second["finished"] >= second["started"]
    out = proc.stdout + proc.stderr
    assert "1 added, 1 changed, 1 touched, 1 removed, 1 failed" in out


def test_changes_table_says_exactly_what_happened(nightly):
    tmp, _, _ = nightly
    runs = [r["run_id"] for r in rows(tmp / "results", "runs", drop=())]
    changes = rows(tmp / "results", "changes", drop=())
    last = {c["path"]: c for c in changes if c["run_id"] == runs[1]}
    assert {p: c["change"] for p, c in last.items()} == {
        "a/added.ome.tif": "added",
        "a/change.ome.tif": "changed",
        "a/touch.ome.tif": "touched",
        "a/delete.ome.tif": "removed",
        "a/corrupt.ome.tif": "failed",
    }
    assert last["a/change.ome.tif"]["codes_changed"] is True
    assert last["a/touch.ome.tif"]["codes_changed"] is False
    assert "truncated" in last["a/corrupt.ome.tif"]["error"]
    assert len([c for c in changes if c["run_id"] == runs[0]]) == 7  # all added


def test_removed_images_keep_their_history(nightly):
    tmp, first, _ = nightly
    images = {i["path"]: i for i in rows(tmp / "results", "images")}
    gone = images["a/delete.ome.tif"]
    assert gone["status"] == "removed" and gone["iscc_code"]
    old = {i["path"]: i for i in first["images"]}["a/delete.ome.tif"]
    assert gone["iscc_code"] == old["iscc_code"]
    scenes = [s for s in rows(tmp / "results", "scenes") if s["path"] == gone["path"]]
    assert scenes and {s["status"] for s in scenes} == {"removed"}


def test_incremental_catalogue_equals_a_from_scratch_run(nightly, tmp_path):
    tmp, _, _ = nightly
    run(tmp, {"results": str(tmp_path / "fresh")})
    for name in ("images", "scenes", "views", "simprints", "errors", "duplicates"):
        inc = [r for r in rows(tmp / "results", name) if r.get("status") != "removed"]
        if name == "views":  # rows of the removed image's views are history
            gone = {r["image_id"] for r in rows(tmp / "results", "images")}
            gone -= {r["image_id"] for r in rows(tmp_path / "fresh", "images")}
            inc = [r for r in inc if r["image_id"] not in gone]
        assert inc == rows(tmp_path / "fresh", name), name


def test_a_no_change_rerun_rewrites_identical_tables(nightly):
    tmp, _, _ = nightly
    cat = tmp / "results" / "catalogue"
    before = {n: (cat / f"{n}.parquet").read_bytes() for n in ("scenes", "views")}
    before["duplicates"] = (cat / "duplicates.parquet").read_bytes()
    images = rows(tmp / "results", "images")
    run(tmp)
    last = rows(tmp / "results", "runs", drop=())[-1]
    assert last["images_read"] == 1  # only the corrupt file is retried
    assert last["images_reused"] == 6 and last["images_added"] == 0
    # nothing removed tonight, no pixels hashed (the corrupt file failed again)
    assert last["images_removed"] == 0 and last["images_removed_total"] == 1
    assert last["bytes_hashed"] == 0 and last["bytes_total"] > 0
    for name, data in before.items():
        assert (cat / f"{name}.parquet").read_bytes() == data, name
    assert rows(tmp / "results", "images") == images


def test_same_pixels_in_two_formats_are_one_duplicate_group(nightly):
    tmp, _, _ = nightly
    dups = rows(tmp / "results", "duplicates")
    exact = [d for d in dups if d["kind"] == "exact"]
    assert {d["path"] for d in exact} == {"a/one.ome.tif", "b/one.ome.zarr"}
    assert {d["format"] for d in exact} == {"ome-tiff", "ome-zarr"}
    assert len({d["group_id"] for d in exact}) == 1


def test_similar_answers_from_the_catalogue(nightly, tmp_path):
    tmp, _, _ = nightly
    results = tmp / "results"
    copy = synth.write_ome_tiff(tmp_path / "copy.ome.tif", scene(1), compression="zlib")
    proc = run_cli("similar", "--json", results, copy)
    assert proc.returncode == 0, proc.stderr
    found = [json.loads(line) for line in proc.stdout.splitlines()]
    identical = {m["path"] for m in found if m["match"] == "identical"}
    assert identical == {"a/one.ome.tif", "b/one.ome.zarr"}
    # a cropped copy: not identical, but near by its views
    crop = synth.write_ome_tiff(tmp_path / "crop.ome.tif", scene(1)[..., 2:-2, 2:-2])
    found = [
        json.loads(x)
        for x in run_cli("similar", "--json", results, crop).stdout.splitlines()
    ]
    # by its mixed code or, nearer, by a view's code (never identical)
    assert found and {m["match"] for m in found} <= {"iscc_mixed", "iscc_image"}
    assert {m["path"] for m in found} >= {"a/one.ome.tif", "b/one.ome.zarr"}
    mixed = found[0]["code"]
    proc = run_cli("similar", results, mixed, "--max-distance", "0")
    assert proc.returncode == 0 and "a/one.ome.tif#scene0" in proc.stdout
    other = synth.write_ome_tiff(tmp_path / "other.ome.tif", scene(99))
    assert run_cli("similar", results, other).returncode == 1  # nothing alike


def test_verify_catches_pixels_changed_in_place(nightly, tmp_path):
    tmp, _, _ = nightly
    results, repo = tmp / "results", tmp / "repo"
    proc = run_cli("verify", results)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": OK") == 6
    target = repo / "b" / "plain.tif"
    st = os.stat(target)
    pixels = scene(6)[0, 0].copy()
    pixels[1, 2:5, 7] += 1  # three pixels of one plane
    synth.write_tiff(target, pixels)
    assert os.stat(target).st_size == st.st_size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # hide the change
    proc = run_cli("verify", results)
    assert proc.returncode == 1
    # the plane is named, from the catalogue's plane digests
    changed = "pixels differ in scene(s) 0: 1 of 3 planes differs: z=0 c=0 t=1"
    assert f"{target}: FAILED ({changed})" in proc.stdout
    assert "1 failed, 0 missing of 6 images checked" in proc.stderr
    # the corrupt image has no codes to check: said, not skipped silently
    assert "NOTE: 1 image failed in the last run" in proc.stderr
    proc = run_cli("verify", "--sample", "2", "--json", results)
    assert len(proc.stdout.splitlines()) == 2
    # a storage move: the root lives elsewhere now
    moved = tmp_path / "moved"
    os.rename(repo, moved)
    try:
        proc = run_cli("verify", results)
        assert proc.returncode == 1 and proc.stdout.count(": MISSING") == 6
        proc = run_cli("verify", "--root", f"repo={moved}", results)
        assert proc.stdout.count(": OK") == 5 and proc.returncode == 1
    finally:
        os.rename(moved, repo)
    synth.write_tiff(target, scene(6)[0, 0])
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_recheck_finds_changes_hidden_from_mtime(tmp_path):
    """With incremental.recheck the raw bytes are re-hashed even when size and
    mtime say nothing changed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    a = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    target = synth.write_tiff(repo / "x.tif", a)
    run(tmp_path)
    st = os.stat(target)
    synth.write_tiff(target, a[::-1].copy())
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    run(tmp_path)
    assert rows(tmp_path / "results", "runs")[-1]["images_reused"] == 1  # trusted
    run(tmp_path, {"incremental": {"recheck": True}})
    last = rows(tmp_path / "results", "runs")[-1]
    assert last["images_rehashed"] == 0 and last["images_read"] == 1
    (change,) = [
        c for c in rows(tmp_path / "results", "changes") if c["change"] != "added"
    ]
    assert change["change"] == "changed" and change["codes_changed"]


def test_conda_env_and_pip_lock_pin_the_same_versions():
    import yaml

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lock = {}
    with open(os.path.join(root, "envs", "requirements.lock")) as f:
        for line in f:
            if "==" in line and not line.startswith((" ", "#")):
                name, version = (
                    line.split(";")[0].strip().rstrip("\\").strip().split("==")
                )
                lock[name.lower()] = version
    env = yaml.safe_load(open(os.path.join(root, "envs", "biocodes.yaml")))
    assert "python=3.11" in env["dependencies"]
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    pins = dict(p.split("==") for p in pip if "==" in p)
    assert {k.lower(): v for k, v in pins.items()} == lock
    assert len(lock) > 50


def test_run_records_what_reproduces_it(nightly):
    tmp, _, _ = nightly
    last = rows(tmp / "results", "runs", drop=())[-1]
    config = json.loads(last["config"])
    assert config["roots"]["repo"] == str(tmp / "repo")
    versions = json.loads(last["versions"])
    assert versions["iscc-sum"] and versions["biocodes"]
    assert last["imagewalk_spec"] == "IEP-0018 (Draft)"
    assert last["versions_changed"] == ""


def test_versions_in_runs_are_compared(tmp_path):
    from biocodes.repository.catalogue import _versions_changed

    prev = [{"versions": json.dumps({"iscc-sum": "0.1.0", "numpy": "2.0"})}]
    moved = _versions_changed(prev, {"iscc-sum": "0.2.0", "numpy": "2.0"})
    assert moved == "iscc-sum 0.1.0 -> 0.2.0"


def test_secrets_never_reach_the_recorded_config():
    from biocodes.repository.catalogue import redact

    cfg = {"roots": {"a": "/x"}, "s3": {"secret_access_key": "abc", "password": "p"}}
    text = json.dumps(redact(cfg))
    assert "abc" not in text and '"p"' not in text and "/x" in text


if __name__ == "__main__":
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", __file__]))
