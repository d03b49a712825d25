"""Images still being written: an image whose newest mtime is younger than
``incremental.settle_seconds`` is left alone (its previous rows kept, a new
one left out), counted "in progress", and read once it has settled."""

import os
import time
from pathlib import Path

import pyarrow.parquet as pq
from test_nightly import rows, run, scene

from biocodes import synth


def age(path, seconds):
    """Set the mtime of a file (or of a store and everything in it) back."""
    when = time.time_ns() - seconds * 10**9
    for f in [path, *(path.rglob("*") if path.is_dir() else [])]:
        os.utime(f, ns=(when, when))


def test_an_image_still_being_written_is_read_once_settled(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    old = synth.write_ome_tiff(repo / "old.ome.tif", scene(1))
    age(old, 7200)
    run(tmp_path, {"incremental": {"settle_seconds": 3600}})
    first = {i["path"]: i for i in rows(tmp_path / "results", "images")}
    assert set(first) == {"old.ome.tif"}
    # a night: a new store is being filled, the old file is being rewritten
    store = synth.write_ome_zarr(repo / "new.ome.zarr", scene(2), zarr_format=3)
    synth.write_ome_tiff(old, scene(3))
    proc = run(tmp_path, {"incremental": {"settle_seconds": 3600}})
    images = {i["path"]: i for i in rows(tmp_path / "results", "images")}
    assert set(images) == {"old.ome.tif"}  # the new store is not read yet
    assert images["old.ome.tif"]["iscc_code"] == first["old.ome.tif"]["iscc_code"]
    last = rows(tmp_path / "results", "runs")[-1]
    assert last["images_in_progress"] == 2 and last["images_read"] == 0
    assert last["images_changed"] == 0 and last["images_added"] == 0
    assert "2 in progress" in proc.stdout + proc.stderr
    report = (tmp_path / "results" / "report.html").read_text()
    assert "in progress" in report
    # settled: both are read, the rewritten file is a change, the store added
    age(store, 7200)
    age(old, 7200)
    run(tmp_path, {"incremental": {"settle_seconds": 3600}})
    last = rows(tmp_path / "results", "runs", drop=())[-1]
    assert last["images_in_progress"] == 0 and last["images_read"] == 2
    changes = pq.read_table(tmp_path / "results" / "catalogue" / "changes")
    now = [c for c in changes.to_pylist() if c["run_id"] == last["run_id"]]
    assert {c["path"]: c["change"] for c in now} == {
        "new.ome.zarr": "added",
        "old.ome.tif": "changed",
    }


def test_the_generated_example_is_exempt_from_the_settle_time(tmp_path):
    """The example is written just before its scan: it is read at once, while
    a fresh file in another root waits (the workflow passes the example's
    label when example.generate is true)."""
    from biocodes.repository.manifest import build_manifest, settle_seconds

    for label in ("example", "lab"):
        (tmp_path / label).mkdir()
        synth.write_ome_tiff(tmp_path / label / "x.ome.tif", scene(1))
    roots = {k: str(tmp_path / k) for k in ("example", "lab")}
    manifest = tmp_path / "m.parquet"
    build_manifest(manifest, roots, 1, settle=3600, settle_exempt=["example"])
    rows = pq.read_table(manifest).to_pylist()
    assert {r["root"]: r["in_progress"] for r in rows} == {
        "example": False,
        "lab": True,
    }
    assert settle_seconds({"settle_seconds": 5}) == 5
    assert settle_seconds({}) == int(os.environ["BIOCODES_SETTLE_SECONDS"])
    rule = (Path(__file__).parents[1] / "workflow/rules/manifest.smk").read_text()
    assert 'settle_exempt=[config["example"]["root"]] if example_marker()' in rule
