"""The benchmark's synthetic repository (benchmarks/scale.py), built with
numpy shard by shard: its codes are the text base64 gives and iscc_core
decodes, its image ids and shards are the manifest's, its copies cross
shards, and the same seed writes the same bytes."""

from __future__ import annotations

import base64
from pathlib import Path

import iscc_core as ic
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from catalogues import scale_benchmark
from iscc_lib import SumHasher

from biocodes.repository.manifest import image_id, shard_of
from biocodes.repository.tables import SCHEMAS, SHARD_TABLES, read_table, sort_table

#: main type and subtype of the wide ISCC-SUM the shard jobs write
WIDE_SUM = ic.iscc_decode(SumHasher().finalize(256, wide=True, add_units=True)["iscc"])[
    :2
]
SHARDS = 4
IMAGES = 3000


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    scale = scale_benchmark()
    base = tmp_path_factory.mktemp("scale")
    scale.synthetic_states(base / "quiet", IMAGES, SHARDS)
    scale.synthetic_states(base / "changed", IMAGES, SHARDS, changed=0.05)
    return scale, base


def table(base: Path, states: str, name: str) -> pa.Table:
    parts = [
        read_table(base / states / str(k) / f"{name}.parquet", name)
        for k in range(SHARDS)
    ]
    return pa.concat_tables(parts)


def test_base32_is_base64s_text():
    scale = scale_benchmark()
    rng = np.random.default_rng(1)
    for length in (*range(1, 41), 66):
        raw = rng.integers(0, 256, (50, length), dtype=np.uint8)
        got = scale.b32(raw)
        for row, text in zip(raw, got):
            want = base64.b32encode(row.tobytes()).rstrip(b"=")
            assert text.tobytes() == want, length


def test_states_have_the_manifests_ids_and_shards(built):
    _scale_module, base = built
    for k in range(SHARDS):
        for name in SHARD_TABLES:
            t = read_table(base / "quiet" / str(k) / f"{name}.parquet", name)
            assert t.schema == SCHEMAS[name], name
            assert t.equals(sort_table(name, t)), name
            assert all(shard_of(i, SHARDS) == k for i in t["image_id"].to_pylist())
    images = table(base, "quiet", "images")
    assert images.num_rows == IMAGES
    paths = images["path"].to_pylist()
    assert sorted(paths) == [f"d{i // 1000:04d}/img{i:07d}.tif" for i in range(IMAGES)]
    assert images["image_id"].to_pylist() == [image_id("repo", p) for p in paths]
    failed = pc.sum(pc.equal(images["status"], "error")).as_py()
    assert 0 < failed < IMAGES * 0.03
    assert table(base, "quiet", "errors").num_rows == failed
    scenes = table(base, "quiet", "scenes")
    assert 1.1 < scenes.num_rows / (IMAGES - failed) < 1.3
    assert pc.sum(images["scene_count"]).as_py() == scenes.num_rows
    assert table(base, "quiet", "views").num_rows == 2 * scenes.num_rows


def test_codes_are_valid_iscc_codes(built):
    _scale_module, base = built
    scenes = table(base, "quiet", "scenes").slice(0, 200)
    views = table(base, "quiet", "views").slice(0, 200)
    images = table(base, "quiet", "images").drop_null().slice(0, 200)
    kinds = {
        "iscc_code": (*WIDE_SUM, 32),
        "data_code": (ic.MT.DATA, 0, 32),
        "instance_code": (ic.MT.INSTANCE, 0, 32),
        "iscc_mixed": (ic.MT.CONTENT, ic.ST_CC.MIXED, 8),
    }
    for column, (mtype, stype, size) in kinds.items():
        for code in scenes[column].to_pylist():
            mt, st, _v, _len, body = ic.iscc_decode(code)
            assert (mt, st, len(body)) == (mtype, stype, size), column
    for code in views["iscc_image"].to_pylist():
        mt, st, _v, _len, body = ic.iscc_decode(code)
        assert (mt, st, len(body)) == (ic.MT.CONTENT, ic.ST_CC.IMAGE, 8)
    for code in images["iscc_code"].to_pylist():
        assert ic.iscc_decode(code)[:2] == WIDE_SUM
    # the ISCC-SUM's units are the scene's Data- and Instance-Code's first halves
    for row in scenes.to_pylist():
        units = [ic.iscc_decode(row[c])[4][:16] for c in ("data_code", "instance_code")]
        assert ic.iscc_decode(row["iscc_code"])[4] == b"".join(units)


def _body(code: str) -> int:
    return int.from_bytes(ic.iscc_decode(code)[4], "big")


def test_copies_cross_shards(built):
    _scale_module, base = built
    parts = []
    for k in range(SHARDS):
        t = read_table(base / "quiet" / str(k) / "scenes.parquet", "scenes")
        parts.append(t.append_column("shard", pa.array([k] * t.num_rows)))
    scenes = pa.concat_tables(parts).to_pylist()
    by_sum: dict[str, list[int]] = {}
    for row in scenes:
        by_sum.setdefault(row["iscc_code"], []).append(row["shard"])
    groups = [s for s in by_sum.values() if len(s) > 1]
    assert len(groups) >= len(scenes) // 200 * 0.8  # 0.5% exact copies
    assert any(len(set(s)) > 1 for s in groups)
    # near copies: a Data-Code 1-19 bits from another scene's
    codes = sorted({_body(r["data_code"]) for r in scenes})
    near = 0
    for a in codes:
        distance = min((a ^ b).bit_count() for b in codes if b != a)
        near += distance < 20
    assert near >= len(scenes) // 200


def test_changed_states_change_that_fraction_everywhere(built):
    _scale_module, base = built
    quiet = table(base, "quiet", "images").sort_by("path")
    changed = table(base, "changed", "images").sort_by("path")
    assert quiet["image_id"].equals(changed["image_id"])
    moved = pc.not_equal(quiet["mtime_ns"], changed["mtime_ns"])
    assert 0.03 * IMAGES < pc.sum(moved).as_py() < 0.07 * IMAGES
    for k in range(SHARDS):  # spread over every shard
        ids = set(changed.filter(moved)["image_id"].to_pylist())
        assert any(shard_of(i, SHARDS) == k for i in ids)
    one = table(base, "quiet", "scenes").sort_by([("image_id", "ascending")])
    two = table(base, "changed", "scenes").sort_by([("image_id", "ascending")])
    ids = set(changed.filter(moved)["image_id"].to_pylist())
    for a, b in zip(one.to_pylist(), two.to_pylist()):
        assert (a["data_code"] != b["data_code"]) == (a["image_id"] in ids)


def test_the_same_seed_writes_the_same_bytes(built, tmp_path):
    scale, base = built
    scale.synthetic_states(tmp_path / "again", IMAGES, SHARDS, changed=0.05)
    for k in range(SHARDS):
        for name in SHARD_TABLES:
            a = base / "changed" / str(k) / f"{name}.parquet"
            b = tmp_path / "again" / str(k) / f"{name}.parquet"
            assert a.read_bytes() == b.read_bytes(), (k, name)


def test_shards_without_images_have_empty_tables(tmp_path):
    scale = scale_benchmark()
    scale.synthetic_states(tmp_path / "few", 5, 8, changed=0.5)
    counts = []
    for k in range(8):
        for name in SHARD_TABLES:
            t = read_table(tmp_path / "few" / str(k) / f"{name}.parquet", name)
            assert t.schema == SCHEMAS[name], name
        counts.append(
            read_table(tmp_path / "few" / str(k) / "images.parquet", "images").num_rows
        )
    assert sum(counts) == 5 and 0 in counts
