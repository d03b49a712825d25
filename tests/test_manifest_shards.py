"""Manifest scan, stable shards, user manifests, a shard on an existing cluster."""

import pyarrow.parquet as pq

from biocodes import synth
from biocodes.repository.manifest import (
    build_manifest,
    image_id,
    read_manifest,
    scan,
    shard_of,
)
from biocodes.repository.shard import run_shard


def repo(tmp_path):
    a = synth.random_scene((1, 1, 2, 8, 8), "uint8", seed=1)
    (tmp_path / "r").mkdir()
    synth.write_ome_tiff(tmp_path / "r" / "x.ome.tif", a)
    synth.write_ome_zarr(tmp_path / "r" / "sub" / "s.zarr", a)
    synth.write_ome_zarr(tmp_path / "r" / "nosuffix", a)
    (tmp_path / "r" / "notes.txt").write_text("not an image")
    (tmp_path / "r" / "skip.png").write_bytes(b"")
    return tmp_path / "r"


def test_scan_counts_stores_once_and_shards_stably(tmp_path):
    root = repo(tmp_path)
    rows = scan({"lab": str(root)}, shards=7, exclude=["skip.*"])
    assert [r["path"] for r in rows] == ["nosuffix", "sub/s.zarr", "x.ome.tif"]
    assert [r["is_store"] for r in rows] == [True, True, False]
    for r in rows:
        assert r["image_id"] == image_id("lab", r["path"])
        assert r["shard"] == shard_of(r["image_id"], 7)
    again = scan({"lab": str(root)}, shards=7, exclude=["skip.*"])
    assert [r["shard"] for r in again] == [r["shard"] for r in rows]


def test_user_manifest_file(tmp_path):
    root = repo(tmp_path)
    listing = root / "list.csv"
    listing.write_text("path\nx.ome.tif\nsub/s.zarr\n")
    out = tmp_path / "manifest.parquet"
    roots = {"lab": str(root)}
    assert build_manifest(out, roots, 2, manifest_file=str(listing)) == 2
    rows = read_manifest(out)
    assert {r["root"] for r in rows} == {"lab"}
    assert {r["abspath"] for r in rows} == {
        str(root / "x.ome.tif"),
        str(root / "sub/s.zarr"),
    }
    # the same image ids a scan gives
    scanned = {r["path"]: r["image_id"] for r in scan(roots, 2)}
    assert all(scanned[r["path"]] == r["image_id"] for r in rows)
    assert not any(r["error"] for r in rows)


def test_shard_on_an_existing_cluster_via_scheduler_file(tmp_path):
    from distributed import Client, LocalCluster

    root = repo(tmp_path)
    manifest = tmp_path / "manifest.parquet"
    build_manifest(manifest, {"lab": str(root)}, 1, exclude=["skip.*"])
    scheduler_file = tmp_path / "scheduler.json"
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.write_scheduler_file(str(scheduler_file))
            counts = run_shard(
                manifest,
                0,
                tmp_path / "shard0",
                {"kind": "scheduler_file", "scheduler_file": str(scheduler_file)},
                simprints=False,
            )
    assert counts["images"] == 3 and counts["read"] == 3
    images = pq.read_table(tmp_path / "shard0" / "images.parquet").to_pylist()
    assert {i["status"] for i in images} == {"ok"}
    assert len(pq.read_table(tmp_path / "shard0" / "scenes.parquet")) == 3


def test_user_manifest_is_confined_to_the_roots(tmp_path):
    root = repo(tmp_path)
    secret = tmp_path / "secret.tif"
    secret.write_bytes(b"II*\0")
    listing = tmp_path / "list.csv"
    listing.write_text(f"path\nr/x.ome.tif\n../{tmp_path.name}/secret.tif\n{secret}\n")
    out = tmp_path / "manifest.parquet"
    build_manifest(out, {"lab": str(root)}, 2, manifest_file=str(listing))
    rows = {r["path"]: r for r in read_manifest(out)}
    assert rows["x.ome.tif"]["error"] is None and rows["x.ome.tif"]["root"] == "lab"
    outside = [r for r in rows.values() if r["root"] == "manifest"]
    assert len(outside) == 2
    for r in outside:
        assert r["error_type"] == "outside_roots" and r["size"] == 0


def test_symlinked_directories_follow_only_when_allowed_and_loops_end(tmp_path):
    import os

    root = repo(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    synth.write_tiff(elsewhere / "e.tif", synth.random_scene((1, 1, 1, 8, 8), "uint8"))
    os.symlink(elsewhere, root / "linked")
    os.symlink("..", root / "sub" / "up")  # a directory loop
    rows = {r["path"]: r for r in scan({"lab": str(root)}, 2, exclude=["skip.*"])}
    assert rows["linked"]["error_type"] == "outside_roots"
    assert "linked/e.tif" not in rows
    followed = scan({"lab": str(root)}, 2, exclude=["skip.*"], follow_symlinks=True)
    paths = [r["path"] for r in followed]
    assert "linked/e.tif" in paths and not any(r["error"] for r in followed)
    assert len(paths) == len(set(paths)) == 4  # the loop is walked once


def test_a_new_shard_count_reads_no_pixels_and_keeps_the_rows(tmp_path):
    """Images that move to another shard take their rows from the previous
    catalogue; a shard where nothing changed keeps its state files as they
    are; the count follows the repository's size in powers of two."""
    import os

    from biocodes.repository.catalogue import merge_run
    from biocodes.repository.layout import shards_for

    root = repo(tmp_path)
    local = {"kind": "local"}
    manifest = tmp_path / "m1.parquet"
    build_manifest(manifest, {"lab": str(root)}, 1, exclude=["skip.*"])
    first = run_shard(manifest, 0, tmp_path / "state/0", local, False, shards=1)
    assert first["read"] == 3
    merge_run([tmp_path / "state/0"], tmp_path / "catalogue", {}, manifest)
    before = pq.read_table(tmp_path / "catalogue/scenes").to_pylist()

    manifest = tmp_path / "m2.parquet"
    build_manifest(manifest, {"lab": str(root)}, 2, exclude=["skip.*"])
    states = [tmp_path / f"state/{k}" for k in range(2)]
    for k in range(2):
        counts = run_shard(
            manifest,
            k,
            states[k],
            local,
            False,
            shards=2,
            catalogue=tmp_path / "catalogue",
        )
        assert counts["read"] == counts["rehashed"] == 0, counts
    merge_run(states, tmp_path / "catalogue", {}, manifest)
    after = pq.read_table(tmp_path / "catalogue/scenes").to_pylist()
    assert after == before
    version = os.path.realpath(states[0])  # nothing changed: not rewritten
    run_shard(manifest, 0, states[0], local, False, shards=2)
    assert os.path.realpath(states[0]) == version

    assert [shards_for(n) for n in (10, 10_000, 20_000, 1_000_000)] == [1, 1, 2, 128]


def test_the_scan_decides_the_shard_count_and_keeps_it(tmp_path):
    """The count comes from this run's scan (a first run and the next night
    have the same shards) and is kept while it is within a factor of two of
    the ideal one; a fixed ``shards`` wins."""
    from biocodes.repository.layout import decide_shards
    from biocodes.repository.manifest import manifest_shards, shard_of

    assert decide_shards(20_000) == 2  # a first run: from its own scan
    assert decide_shards(20_000, previous=2) == 2
    assert decide_shards(35_000, previous=2) == 2  # ideal 4: kept
    assert decide_shards(5_000, previous=2) == 2  # ideal 1: kept
    assert decide_shards(50_000, previous=2) == 8  # ideal 8: grown
    assert decide_shards(10, previous=8) == 1
    assert decide_shards(10, previous=8, shards=7) == 7

    root = repo(tmp_path)
    manifest = tmp_path / "m.parquet"
    found = []
    rows = build_manifest(
        manifest, {"lab": str(root)}, lambda n: found.append(n) or 2, exclude=["skip.*"]
    )
    assert found == [rows] and manifest_shards(manifest) == 2
    for row in pq.read_table(manifest).to_pylist():
        assert row["shard"] == shard_of(row["image_id"], 2)


QUIET_IMPORTS = """
import json, sys
from biocodes.infra.limits import Limits
from biocodes.repository.manifest import build_manifest
from biocodes.repository.shard import run_shard
from biocodes.views.build import view_options

manifest, state, root = sys.argv[1:4]
limits = Limits.from_config({"max_plane_bytes": "2 GiB"})
if sys.argv[4] == "scan":
    build_manifest(manifest, {"lab": root}, 1, exclude=["skip.*"], limits=limits)
else:
    views = view_options({"enabled": True, "thumbnails": False}, None)
    counts = run_shard(
        manifest, 0, state, {"kind": "local"}, False, views=views, shards=1
    )
    assert counts["read"] == 0, counts
heavy = ("dask", "distributed", "zarr", "bioio", "tifffile", "scipy", "ome_types")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_the_scan_and_a_quiet_shard_import_nothing_heavy(tmp_path):
    """Every job of a night pays its imports: the scan and a shard with
    nothing to read import no dask (~0.4 s), reader or scipy. (pandas comes
    with any Python-to-Arrow conversion in pyarrow: not avoidable here.)"""
    import json
    import subprocess
    import sys

    from biocodes.views.build import view_options

    root = repo(tmp_path)
    manifest, state = tmp_path / "m.parquet", tmp_path / "state/0"
    build_manifest(manifest, {"lab": str(root)}, 1, exclude=["skip.*"])
    views = view_options({"enabled": True, "thumbnails": False}, None)
    run_shard(manifest, 0, state, {"kind": "local"}, False, views=views, shards=1)
    for step in ("scan", "quiet shard"):
        proc = subprocess.run(
            [sys.executable, "-c", QUIET_IMPORTS, manifest, state, root, step],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout.splitlines()[-1]) == [], step


QUIET_NIGHT = """
import json, sys
from biocodes.repository.config import without_pandas

without_pandas()
from biocodes.repository.catalogue import merge_run, summary
from biocodes.repository.manifest import build_manifest, plain_files
from biocodes.repository.report import write_report
from biocodes.repository.shard import write_shard_manifests
from biocodes.views.build import view_options

root, results = sys.argv[1:3]
manifest, parts = f"{results}/manifest.parquet", f"{results}/parts"
views = view_options({"enabled": True}, f"{results}/thumbnails")
build_manifest(manifest, {"repo": root}, 1, plain=plain_files(parts))
write_shard_manifests(manifest, parts, f"{results}/state", 1, False, views)
cfg = {"roots": {"repo": root}, "results": results}
merge_run([f"{results}/state/0"], f"{results}/catalogue", cfg, manifest)
write_report(f"{results}/catalogue", f"{results}/report.html")
print(summary(f"{results}/catalogue"), file=sys.stderr)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "pandas")))
"""


def test_a_quiet_nights_scan_and_merge_import_no_pandas(tmp_path):
    """The scan and the merge-and-report jobs refuse pandas (pyarrow would
    import it, ~0.4 s a job, only to ask whether values are pandas objects):
    a quiet night's scan, merge, report and summary work without it."""
    import json
    import subprocess
    import sys

    from catalogues import build_catalogue

    root = tmp_path / "repo"
    root.mkdir()
    synth.write_png(
        root / "a.png", synth.random_scene((1, 1, 1, 8, 8), "uint8")[0, 0, 0]
    )
    synth.write_ome_tiff(
        root / "b.ome.tif", synth.random_scene((1, 1, 2, 8, 8), "uint8")
    )
    results = tmp_path / "results"
    build_catalogue({"repo": root}, results)
    proc = subprocess.run(
        [sys.executable, "-c", QUIET_NIGHT, root, results],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == []
    assert "2 images" in proc.stderr and (results / "report.html").exists()


def test_sizes_parse_as_dask_parses_them():
    from dask.utils import format_bytes, parse_bytes

    from biocodes.infra.limits import _fmt, parse_size

    for text in ("100", "100 MB", "5.4 kB", "1kiB", "1e6 kB", "MB", "2 GiB", 7, 2.5):
        assert parse_size(text) == parse_bytes(text), text
    for n in (0, 900, 1234, 12345678, 1234567890, 2**31, 600 * 2**20):
        assert _fmt(n) == format_bytes(n), n


def test_a_shard_is_quiet_only_while_nothing_is_to_be_looked_at(tmp_path):
    """The scan rewrites a shard's part of the manifest (so its job runs)
    unless the shard's state is up to date with the same rows, settings and
    shard count and holds nothing to read again; a failed image keeps its
    shard from ever being quiet."""
    from biocodes.repository.shard import counts_for_run, write_shard_manifests

    root = repo(tmp_path)
    parts, states = tmp_path / "parts", tmp_path / "state"
    local = {"kind": "local"}

    def night(exclude, simprints=False, run=True):
        manifest = tmp_path / "m.parquet"
        build_manifest(manifest, {"lab": str(root)}, 2, exclude=exclude)
        written = write_shard_manifests(manifest, parts, states, 2, simprints, None)
        for k in written if run else ():
            part = parts / f"{k}.parquet"
            run_shard(part, k, states / str(k), local, simprints, shards=2)
        return written

    assert night(["skip.*"]) == [0, 1]
    stamps = [(parts / f"{k}.parquet").stat().st_mtime_ns for k in range(2)]
    assert night(["skip.*"]) == []  # a quiet night: no part rewritten
    assert [(parts / f"{k}.parquet").stat().st_mtime_ns for k in range(2)] == stamps
    assert night(["skip.*"], simprints=True, run=False) == [0, 1]  # settings
    assert night(["skip.*"]) == [0, 1]  # the state was not brought up to date
    assert night(["skip.*"]) == []
    # parts written for other settings, run with these (a run resumed after
    # its config changed): the state does not vouch for them
    assert night(["skip.*"], simprints=True, run=False) == [0, 1]
    for k in range(2):
        run_shard(parts / f"{k}.parquet", k, states / str(k), local, False, shards=2)
        assert not (states / str(k) / "quiet.json").exists()
    assert night(["skip.*"], simprints=True) == [0, 1]
    assert night(["skip.*"], simprints=True) == []
    assert night(["skip.*"]) == [0, 1]

    failed = shard_of(image_id("lab", "skip.png"), 2)
    assert night([]) == [failed]  # an added image, which fails
    assert night([]) == [failed]  # and is read again every night
    assert night([]) == [failed]

    # counts of a job that did not run this night: all its images left alone
    old = {"images": 3, "read": 2, "rehashed": 1, "reused": 0, "run_id": "r1"}
    assert counts_for_run(old, "r2") == {
        "images": 3,
        "read": 0,
        "rehashed": 0,
        "reused": 3,
    }
    assert counts_for_run(old, "r1") == {k: v for k, v in old.items() if k != "run_id"}


def test_an_empty_shard_is_quiet(tmp_path):
    """A shard that holds no image is settled: its next night's part is left
    untouched, so its job does not run (it used to run every night)."""
    from biocodes.repository.shard import QUIET_FILE, write_shard_manifests

    root = repo(tmp_path)
    manifest = tmp_path / "m.parquet"
    build_manifest(manifest, {"lab": str(root)}, 64, exclude=["skip.*"])
    parts, states = tmp_path / "parts", tmp_path / "state"
    written = write_shard_manifests(manifest, parts, states, 64, False, None)
    empty = next(k for k in written if not pq.read_table(parts / f"{k}.parquet"))
    run_shard(
        parts / f"{empty}.parquet", empty, states / str(empty), {}, False, shards=64
    )
    assert (states / str(empty) / QUIET_FILE).is_file()
    again = write_shard_manifests(manifest, parts, states, 64, False, None)
    assert empty not in again
