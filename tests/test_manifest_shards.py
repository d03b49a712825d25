"""Manifest scan, stable shards, user manifests, a shard on an existing cluster."""

import pyarrow.parquet as pq

from biocodes import synth
from biocodes.manifest import build_manifest, image_id, read_manifest, scan, shard_of
from biocodes.shard import run_shard


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
