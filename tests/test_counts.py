"""The figures of one run add up and agree: what the shards counted (read,
re-hashed and unchanged, not opened, in progress, refused at the scan), the
summary, the report and the failure lines; a failure line gives one path,
the error type and a cause in words."""

import os

import numpy as np
from catalogues import build_catalogue
from test_plates import damage, plate_fields

from biocodes import synth
from biocodes.repository.catalogue import merge_run, summary
from biocodes.repository.manifest import build_manifest
from biocodes.repository.report import render
from biocodes.repository.shard import run_shard
from biocodes.repository.tables import read_catalogue


def night(repo, results):
    """One run as the workflow does it (scan, one shard, merge), no Snakemake."""
    manifest = results / "manifest.parquet"
    rows = build_manifest(manifest, {"repo": str(repo)}, 1)
    counts = run_shard(
        manifest,
        0,
        results / "state" / "0",
        {"kind": "local"},
        False,
        threads=1,
        results_dir=str(results),
        shards=1,
        catalogue=results / "catalogue",
    )
    config = {"roots": {"repo": str(repo)}, "results": str(results)}
    merge_run(
        [results / "state" / "0"], results / "catalogue", config, manifest, [counts]
    )
    return rows, counts, read_catalogue(results / "catalogue", "runs")[-1]


def test_each_image_is_counted_once(tmp_path):
    repo, results = tmp_path / "repo", tmp_path / "results"
    repo.mkdir()
    pixels = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)
    synth.write_tiff(repo / "a.tif", pixels)
    synth.write_tiff(repo / "b.tif", pixels + 1)
    (repo / "empty.tif").write_bytes(b"")
    os.symlink(tmp_path / "outside.tif", repo / "link.tif")
    night(repo, results)
    # a quiet night but for b.tif: same size, other pixels (re-hashed, then read)
    synth.write_tiff(repo / "b.tif", pixels + 2)
    rows, counts, run = night(repo, results)
    assert counts == {
        "images": 4,
        "read": 1,
        "rehashed": 0,
        "reused": 1,
        "in_progress": 0,
        "refused": 2,
    }
    assert sum(v for k, v in counts.items() if k != "images") == rows == 4
    assert run["images_read"] == 1 and run["images_refused"] == 2
    text = summary(results / "catalogue")
    assert "pixels read for 1 image (1 scene," in text
    assert "0 re-hashed as files and unchanged, 1 unchanged (not opened)" in text
    assert "2 refused at the scan" in text
    # a night with nothing new: no pixels read, nothing "read" for the refused
    _, counts, run = night(repo, results)
    assert counts["read"] == 0 and counts["refused"] == 2
    assert "pixels read for 0 images (0 scenes, 0.0 MB)" in summary(
        results / "catalogue"
    )


def test_failures_agree_in_summary_and_report_and_read_as_words(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    plate = synth.write_plate(repo / "p.ome.zarr", plate_fields(), 3)
    damage(plate / "B" / "2" / "1")  # one failed field; the plate is ok
    data = synth.write_ome_tiff(
        repo / "cut.ome.tif", np.zeros((1, 1, 1, 64, 64), np.uint16)
    )
    (repo / "cut.ome.tif").write_bytes(data.read_bytes()[:200])
    (repo / "notes.tif").write_text("not a TIFF")
    cat = build_catalogue({"repo": repo}, tmp_path / "results", views=False)
    text = summary(cat)
    lines = text.splitlines()
    failed = [line for line in lines if line.startswith("  failed: ")]
    assert len(failed) == 3
    assert "(1 ok, 2 failed, 1 ok but with a failed scene)" in lines[0]
    html = render(cat)
    assert "Failures (3 images: 2 failed, 1 ok but with a failed scene)" in html
    for line in failed:
        path = line.split(": ")[1].split(" (scene")[0]
        assert line.count(path) == 1, line  # one path
        assert "Error(" not in line and "<" not in line, line  # no internals
    assert any("p.ome.zarr (scene " in line for line in failed)


def test_run_ids_sort_in_the_order_the_runs_started(monkeypatch):
    """The catalogue takes its last run by run id (the last ``changes`` file,
    the last ``runs`` row): ids made within one second sort in order too
    (a random part alone made two quick nights come out swapped)."""
    from biocodes.repository.manifest import new_run

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    ids = [new_run()["run_id"] for _ in range(200)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
