"""HCS plates in OME-Zarr: every field of every well is a scene, in
acquisition, row, column, field order, with its place recorded; a damaged
field is that scene's error and the others keep their codes, which equal the
codes of the same fields written as plain OME-Zarr images."""

import json
import shutil

import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from servers import http_server

from biocodes import synth
from biocodes.core.fingerprint import biocode

WELLS = [(r, c) for r in "AB" for c in ("1", "2", "3")]  # 2 x 3 wells


def plate_fields():
    return {
        (r, c): [
            synth.structured_scene((1, 2, 2, 32, 24), "uint16", seed=10 * i + f)
            for f in range(2)
        ]
        for i, (r, c) in enumerate(WELLS)
    }


def damage(field_dir):
    """Delete every chunk of a field's full-resolution array (metadata kept)."""
    level = field_dir / "0"
    for p in sorted(level.rglob("*"), reverse=True):
        if p.is_file() and p.name not in (".zarray", ".zattrs", "zarr.json"):
            p.unlink()


@pytest.fixture(params=[2, 3], ids=["v2-ngff0.4", "v3-ngff0.5"])
def plate(request, tmp_path):
    fields = plate_fields()
    path = synth.write_plate(tmp_path / "p.ome.zarr", fields, request.param)
    damage(path / "B" / "2" / "1")
    return path, fields, request.param


def test_fields_are_scenes_in_plate_order_with_one_error(plate, tmp_path):
    path, fields, zarr_format = plate
    r = biocode(path)
    assert r["format"] == "ome-zarr-plate"
    parts = r["parts"]
    assert [(p["well"], p["field"]) for p in parts] == [
        (f"{r}{c}", f) for r, c in WELLS for f in range(2)
    ]
    assert [p["scene_index"] for p in parts] == list(range(12))
    assert {p["plate"] for p in parts} == {"plate"}
    assert {p["acquisition"] for p in parts} == {0}
    bad = [p for p in parts if "error" in p]
    assert [(p["well"], p["field"]) for p in bad] == [("B2", 1)]
    assert bad[0]["iscc_code"] is None and "missing" in bad[0]["error"]["message"]
    want = [synth.expected_biocode(a)[0] for w in WELLS for a in fields[w]]
    got = [p["iscc_code"] for p in parts]
    assert [g for g, w in zip(got, want) if g is not None] == [
        w for g, w in zip(got, want) if g is not None
    ]
    assert sum(g is not None for g in got) == 11
    # the same field as a plain OME-Zarr image: the same code
    single = synth.write_ome_zarr(
        tmp_path / "f.ome.zarr", fields[("A", "3")][1], zarr_format
    )
    assert biocode(single)["parts"][0]["iscc_code"] == parts[5]["iscc_code"]


def test_cli_prints_the_codes_and_the_fields_error(plate):
    path, _, _ = plate
    proc = run_cli("biocode", "--json", path)
    assert proc.returncode == 1  # a field failed
    obj = json.loads(proc.stdout)
    assert sum(p["iscc_code"] is not None for p in obj["parts"]) == 11
    assert "scene 9 (B/2/1)" in proc.stderr and "Traceback" not in proc.stderr
    text = run_cli("biocode", path)
    assert text.stdout.count(" scene ") == 11


def test_a_field_without_metadata_is_its_scenes_error(tmp_path):
    path = synth.write_plate(tmp_path / "p.zarr", plate_fields(), 3)
    shutil.rmtree(path / "A" / "1" / "0")
    parts = biocode(path)["parts"]
    assert "error" in parts[0] and parts[0]["scene_name"] == "A/1/0"
    assert all("error" not in p for p in parts[1:])


def test_bioformats2raw_plate(tmp_path):
    fields = plate_fields()
    path = synth.write_plate(tmp_path / "b2r.zarr", fields, 2, bioformats2raw=True)
    parts = biocode(path)["parts"]
    assert [p["iscc_code"] for p in parts] == [
        synth.expected_biocode(a)[0] for w in WELLS for a in fields[w]
    ]


def test_remote_plate_over_http(plate):
    path, _, _ = plate
    local = biocode(path)
    with http_server(path.parent) as url:
        remote = biocode(f"{url}/{path.name}")
    assert [p["iscc_code"] for p in remote["parts"]] == [
        p["iscc_code"] for p in local["parts"]
    ]
    assert remote["iscc_code"] == local["iscc_code"]


def test_shard_rows_of_a_plate(plate, tmp_path):
    from biocodes.repository.manifest import build_manifest
    from biocodes.repository.shard import run_shard

    path, _, _ = plate
    manifest = tmp_path / "manifest.parquet"
    build_manifest(manifest, {"repo": str(path.parent)}, 1)
    run_shard(manifest, 0, tmp_path / "state", {"kind": "local"}, False)
    scenes = pq.read_table(tmp_path / "state/scenes.parquet").to_pylist()
    errors = pq.read_table(tmp_path / "state/errors.parquet").to_pylist()
    images = pq.read_table(tmp_path / "state/images.parquet").to_pylist()
    assert [i["status"] for i in images] == ["ok"]
    assert len(scenes) == 12
    assert [s["status"] for s in scenes].count("error") == 1
    bad = next(s for s in scenes if s["status"] == "error")
    assert (bad["well"], bad["field"], bad["plate"]) == ("B2", 1, "plate")
    assert [(e["scene_index"], e["error_type"]) for e in errors] == [(9, "unreadable")]
    # a plate with a failed field is read again next run
    counts = run_shard(manifest, 0, tmp_path / "state", {"kind": "local"}, False)
    assert counts["read"] == 1


def test_a_large_plate_is_hashed_in_pieces_with_the_same_rows(plate, tmp_path):
    """Fields split over tasks (here 5 per task: 3 pieces + the raw bytes)
    give exactly the rows of the plate read in one task."""
    from biocodes.repository.manifest import build_manifest
    from biocodes.repository.shard import run_shard

    path, _, _ = plate
    manifest = tmp_path / "manifest.parquet"
    build_manifest(manifest, {"repo": str(path.parent)}, 1)
    tables = {}
    for per_task in (0, 5):
        state = tmp_path / f"state{per_task}"
        counts = run_shard(
            manifest,
            0,
            state,
            {"kind": "local"},
            False,
            plate_fields_per_task=per_task,
        )
        assert counts["read"] == 1
        tables[per_task] = {
            n: [
                {k: v for k, v in r.items() if k not in ("worker", "run_id")}
                for r in pq.read_table(state / f"{n}.parquet").to_pylist()
            ]
            for n in ("images", "scenes", "errors")
        }
    assert tables[5] == tables[0]
    assert len(tables[5]["scenes"]) == 12


def test_plate_pieces_read_only_their_fields(plate):
    from biocodes.core.fingerprint import fingerprint_fields, plate_field_count

    path, fields, _ = plate
    assert plate_field_count(path) == 12
    parts = fingerprint_fields(path, range(8, 11))
    assert [p["scene_index"] for p in parts] == [8, 9, 10]
    assert (
        "error" in parts[1]
        and parts[0]["iscc_code"] == (synth.expected_biocode(fields[("B", "2")][0])[0])
    )


def test_acquisitions_come_first_in_the_order(tmp_path):
    """Scenes: acquisition, then row, column, field (per acquisition); wells
    without rowIndex/columnIndex (NGFF 0.3) are placed by their names."""
    import zarr

    fields = plate_fields()
    path = synth.write_plate(tmp_path / "acq.zarr", fields, 2)
    root = zarr.open_group(str(path), mode="r+")
    plate = dict(root.attrs["plate"])
    plate["acquisitions"] = [{"id": 0}, {"id": 1}]
    plate["wells"] = [{"path": w["path"]} for w in plate["wells"]]
    root.attrs["plate"] = plate
    well = root["A/1"]
    well.attrs["well"] = {
        "images": [{"path": "0", "acquisition": 1}, {"path": "1", "acquisition": 0}],
        "version": "0.4",
    }
    parts = biocode(path)["parts"]
    order = [(p["acquisition"], p["well"], p["field"], p["scene_name"]) for p in parts]
    assert order[0] == (0, "A1", 0, "A/1/1")
    assert order[-1] == (1, "A1", 0, "A/1/0")
    assert [o[1] for o in order[:-1]] == ["A1"] + [
        f"{r}{c}" for r, c in WELLS[1:] for _ in range(2)
    ]
    assert parts[-1]["iscc_code"] == synth.expected_biocode(fields[("A", "1")][0])[0]
