"""The workflow, run by snakemake on a generated repository with local dask workers."""

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
TABLES = [
    "images",
    "scenes",
    "simprints",
    "views",
    "errors",
    "changes",
    "duplicates",
    "runs",
]


def run_workflow(tmp_path, extra=None, *args):
    """Run the workflow on tmp_path/repo: the example generated there, or with
    example.generate false a repository made by the test (root label "repo")."""
    generate = (extra or {}).get("example", {}).get("generate", True)
    config = {
        "roots": {"example" if generate else "repo": str(tmp_path / "repo")},
        "results": str(tmp_path / "results"),
        "example": {"generate": True, "root": "example"},
        "shards": 3,
        "threads": 2,
        **(extra or {}),
    }
    config = {k: v for k, v in config.items() if v is not None}  # None: unset
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [SNAKEMAKE, "--configfile", cfg, "--nolock", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wf")
    proc = run_workflow(tmp, {"simprints": True})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, proc


def table(tmp, name):
    return pq.read_table(tmp / "results" / "catalogue" / name).to_pylist()


def test_all_tables_and_the_corrupt_file_is_an_error_row(finished):
    tmp, proc = finished
    for name in TABLES:
        assert (tmp / "results" / "catalogue" / name).is_dir()
    images = table(tmp, "images")
    assert len(images) == 8
    bad = [i for i in images if i["status"] == "error"]
    assert [i["path"] for i in bad] == ["corrupt/truncated.ome.tif"]
    assert bad[0]["iscc_code"] is None
    errors = table(tmp, "errors")
    assert [e["path"] for e in errors] == ["corrupt/truncated.ome.tif"]
    assert errors[0]["error_type"] == "truncated"
    assert "8 images (7 ok, 1 failed)" in proc.stdout + proc.stderr
    assert all(i["worker"] for i in images)
    formats = {i["path"].split("/")[-1]: i["format"] for i in images}
    assert formats["cells.ome.tif"] == "ome-tiff"
    assert formats["two-shapes.czi"] == "czi" and formats["series.zarr"] == "ome-zarr"


def test_catalogue_codes_match_the_library(finished):
    from biocodes.core.fingerprint import biocode

    tmp, _ = finished
    scenes = table(tmp, "scenes")
    for path in ("tiff/two-scenes.ome.tif", "zarr/series.zarr"):
        ours = [s["iscc_code"] for s in scenes if s["path"] == path]
        assert ours == [p["iscc_code"] for p in biocode(tmp / "repo" / path)["parts"]]
    same = {s["iscc_code"] for s in scenes if s["path"].startswith("tiff/cells")}
    assert same == {
        s["iscc_code"] for s in scenes if s["path"] == "zarr/cells.ome.zarr"
    }
    sims = table(tmp, "simprints")
    assert sum(s["planes"] for s in scenes) == len(sims)


def test_runs_records_versions_and_counts(finished):
    tmp, _ = finished
    (run,) = table(tmp, "runs")
    assert run["images"] == 8 and run["images_error"] == 1
    assert "iscc-sum" in run["versions"]
    assert run["imagewalk_spec"] == "IEP-0018 (Draft)"
    assert len(run["config_sha256"]) == 64
    assert {i["run_id"] for i in table(tmp, "images")} == {run["run_id"]}


def test_bad_config_stops_before_any_job(tmp_path):
    proc = run_workflow(tmp_path, {"shards": "many"})
    assert proc.returncode != 0
    assert "shards" in proc.stderr and "is not of type 'integer'" in proc.stderr
    assert not (tmp_path / "results").exists()
    proc = run_workflow(tmp_path, {"unknown_key": 1})
    assert proc.returncode != 0 and "unknown_key" in proc.stderr
    proc = run_workflow(tmp_path, {"roots": {"lab": str(tmp_path / "missing")}})
    assert proc.returncode != 0 and "is not a directory" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_views_mixed_codes_and_thumbnails(finished):
    from biocodes.views.build import mixed_code

    tmp, _ = finished
    scenes, views = table(tmp, "scenes"), table(tmp, "views")
    by_scene = {}
    for v in views:
        by_scene.setdefault((v["image_id"], v["scene_index"]), []).append(v)
    ok = [s for s in scenes if s["status"] == "ok"]
    assert ok and all((s["image_id"], s["scene_index"]) in by_scene for s in ok)
    for s in ok:
        mine = by_scene[(s["image_id"], s["scene_index"])]
        assert [v["view_index"] for v in mine] == list(range(len(mine)))
        assert s["iscc_mixed"] == mixed_code([v["iscc_image"] for v in mine])
    for v in views:
        assert v["thumbnail"].startswith("thumbnails/")
        assert (tmp / "results" / v["thumbnail"]).is_file()
    # the same pixels as OME-TIFF and OME-Zarr: the same views
    mixed = {s["path"]: s["iscc_mixed"] for s in scenes if s["scene_index"] == 0}
    assert mixed["tiff/cells.ome.tif"] == mixed["zarr/cells.ome.zarr"]


def test_report_renders_thumbnails_in_headless_chromium(finished):
    import re

    import numpy as np
    from browser import dump_dom, screenshot
    from PIL import Image

    tmp, _ = finished
    page = tmp / "results" / "report.html"
    dom = dump_dom(page)
    shown = int(re.search(r'data-images="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-loaded="(\d+)"', dom).group(1))
    # every view in the grid, and the duplicate groups' thumbnails
    assert shown >= len(table(tmp, "views")) and loaded == shown
    assert "corrupt/truncated.ome.tif" in dom and "Failures (1 image)" in dom
    # the run's figures, history, changes, failures and duplicate groups come
    # first: the thumbnails start within the first 2400 px
    png = screenshot(page, tmp / "report.png", height=2400)
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[:2] == (2400, 1280)
    # the thumbnails, not only text on a light background, are on screen
    dark = (pixels.max(axis=2) < 60).mean()
    colourful = (np.ptp(pixels, axis=2) > 80).mean()
    assert dark > 0.05 and colourful > 0.005, (dark, colourful)


def test_a_quiet_night_runs_the_scan_and_one_merge_job(tmp_path):
    """A night with nothing new runs two Python jobs: the scan, and the
    merge, which also writes the report. The scan rewrites a shard's part
    of the manifest only when the shard has something to do, so the job of
    a quiet shard does not start; the run's counts still cover its images.
    A changed image runs its own shard's job only."""
    import os
    import re
    from collections import Counter

    from biocodes import synth
    from biocodes.repository.manifest import image_id, shard_of

    repo = tmp_path / "repo"
    repo.mkdir()
    for k in range(4):
        pixels = synth.random_scene((1, 1, 1, 8, 8), "uint8", seed=k)[0, 0]
        synth.write_tiff(repo / f"img{k}.tif", pixels)
    cfg = {"example": {"generate": False}, "shards": 2}

    def night():
        proc = run_workflow(tmp_path, cfg)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = proc.stdout + proc.stderr
        jobs = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", out, re.M)
        return Counter(jobs), out

    jobs, _ = night()
    assert jobs == {"manifest": 1, "fingerprint": 2, "catalogue": 1, "all": 1}
    report = tmp_path / "results" / "report.html"
    before = report.stat().st_mtime_ns

    jobs, out = night()
    assert jobs == {"manifest": 1, "catalogue": 1, "all": 1}, out
    assert "pixels read for 0 images" in out and "4 unchanged" in out
    assert report.stat().st_mtime_ns > before
    log = (tmp_path / "results" / "logs" / "catalogue.log").read_text()
    assert "report.html" in log
    runs = table(tmp_path, "runs")
    assert [r["images_reused"] for r in runs] == [0, 4]

    st = os.stat(repo / "img0.tif")
    synth.write_tiff(
        repo / "img0.tif", synth.random_scene((1, 1, 8, 8), "uint8", seed=99)[0]
    )
    os.utime(repo / "img0.tif", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    jobs, out = night()
    assert jobs == {"manifest": 1, "fingerprint": 1, "catalogue": 1, "all": 1}, out
    shard = shard_of(image_id("repo", "img0.tif"), 2)
    assert f"fingerprint/{shard}.log" in out or f"shard={shard}" in out
    runs = table(tmp_path, "runs")
    assert (runs[-1]["images_read"], runs[-1]["images_reused"]) == (1, 3)
    assert runs[-1]["images_changed"] == 1
