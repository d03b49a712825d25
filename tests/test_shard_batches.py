"""Small images are hashed in batches (one dask task per batch, not per image):
the same rows as one task each, and one image's failure stays its own."""

import numpy as np
import pyarrow.parquet as pq

from biocodes import synth
from biocodes.repository import shard
from biocodes.repository.manifest import build_manifest, read_manifest
from biocodes.repository.tables import SHARD_TABLES

LOCAL = {"kind": "local"}
#: differ between two runs over the same files
RUN_COLUMNS = {"run_id", "worker", "slurm_job_id", "read_seconds"}


def make_repo(root):
    rng = np.random.default_rng(7)
    root.mkdir()
    for i in range(24):
        pixels = rng.integers(0, 255, (16, 16), dtype=np.uint8)
        if i % 2:
            synth.write_tiff(root / f"s{i:02d}.tif", pixels)
        else:
            synth.write_png(root / f"s{i:02d}.png", pixels)
    (root / "broken.tif").write_bytes(b"II*\0" + b"\xff" * 60)
    big = synth.random_scene((1, 1, 1, 1024, 1100), "uint8", seed=1)
    synth.write_tiff(root / "big.tif", big[0, 0])  # over BATCH_BYTES
    synth.write_ome_zarr(
        root / "store.ome.zarr", synth.random_scene((1, 1, 1, 16, 16), seed=2)
    )
    fields = {
        (r, "1"): [
            synth.random_scene((1, 1, 1, 16, 16), seed=3 + i + f) for f in (0, 1)
        ]
        for i, r in enumerate("AB")
    }
    synth.write_plate(root / "plate.ome.zarr", fields, zarr_format=2)


def tables(state):
    out = {}
    for name in SHARD_TABLES:
        rows = pq.read_table(state / f"{name}.parquet").to_pylist()
        out[name] = [{k: v for k, v in r.items() if k not in RUN_COLUMNS} for r in rows]
    return out


def test_batches_take_small_single_files_only(tmp_path):
    root = tmp_path / "repo"
    make_repo(root)
    manifest = tmp_path / "manifest.parquet"
    build_manifest(manifest, {"repo": str(root)}, 1)
    work = [(r, None) for r in read_manifest(manifest)]
    batches, rest = shard._batches(work, threads=1)
    batched = [r["path"] for b in batches for r, _ in b]
    assert sorted(batched) == sorted(
        r["path"] for r, _ in work if r["path"] != "big.tif"
    )
    assert [r["path"] for r, _ in rest] == ["big.tif"]
    assert all(1 <= len(b) <= shard.BATCH_IMAGES for b in batches)
    assert len(batches) >= 2  # several per worker, not one for the shard


def test_a_batch_gives_each_image_its_own_rows_and_failure(tmp_path):
    root = tmp_path / "repo"
    make_repo(root)
    manifest = tmp_path / "manifest.parquet"
    build_manifest(manifest, {"repo": str(root)}, 1)
    # the plate's 4 fields in pieces of one: its batch sends it back to split
    split = {"plate_fields_per_task": 1}
    batched = shard.run_shard(manifest, 0, tmp_path / "batched", LOCAL, False, **split)
    one_each = tmp_path / "one-each"
    saved = shard.BATCH_BYTES
    shard.BATCH_BYTES = -1  # no image is small: one task per image, as before
    try:
        alone = shard.run_shard(manifest, 0, one_each, LOCAL, False, **split)
    finally:
        shard.BATCH_BYTES = saved
    assert batched == alone == {**alone, "images": 28, "read": 28}
    got, want = tables(tmp_path / "batched"), tables(one_each)
    assert got == want
    status = {r["path"]: r["status"] for r in got["images"]}
    assert status.pop("broken.tif") == "error"
    assert set(status.values()) == {"ok"}
    plate = [s for s in got["scenes"] if s["path"] == "plate.ome.zarr"]
    assert len(plate) == 4 and {s["status"] for s in plate} == {"ok"}
    assert [e["path"] for e in got["errors"]] == ["broken.tif"]
