"""``biocodes compare`` and :func:`biocodes.compare`: files in several formats
against their OME-Zarr conversions (bioio-ome-zarr's writer, bioformats2raw's
layout, OMERO's zarr endpoint and export), one changed pixel named exactly,
other dtypes and shapes said, memory bounded by a few planes."""

from __future__ import annotations

import json
import shutil
import tracemalloc

import mrc
import numpy as np
import pytest
import tifffile
from conftest import run_cli
from servers import http_server, omero_web_zarr_server

from biocodes import biocode, compare, synth
from biocodes.core.compare import pair_scenes, plane_difference
from biocodes.core.imagewalk import SPEC
from biocodes.infra.errors import BiocodeError


def statuses(result: dict) -> list[tuple]:
    return [(e["scene_a"], e["scene_b"], e["status"]) for e in result["scenes"]]


def changed(scene: np.ndarray, where: tuple, by: int) -> np.ndarray:
    """A copy of ``scene`` with one pixel (t, c, z, y, x) moved by ``by``."""
    out = scene.copy()
    out[where] = (int(out[where]) + by) % (int(np.iinfo(out.dtype).max) + 1)
    return out


@pytest.fixture(scope="module")
def czi(tmp_path_factory):
    """A three-scene CZI whose scenes differ in shape, and its scenes."""
    tmp = tmp_path_factory.mktemp("czi")
    scenes = [
        synth.random_scene((1, 2, 3, 40, 48), "uint16", seed=1),
        synth.random_scene((2, 1, 2, 32, 24), "uint16", seed=2),
        synth.random_scene((1, 1, 1, 16, 20), "uint16", seed=3),
    ]
    return synth.write_czi(tmp / "multi.czi", scenes), scenes


def test_a_multi_scene_czi_equals_its_bioformats2raw_conversion(czi, tmp_path):
    path, scenes = czi
    b2r = synth.write_bioformats2raw(tmp_path / "multi.zarr", scenes)
    result = compare(path, b2r)
    assert result["identical"] and result["pairing"] == "index"
    assert statuses(result) == [(i, i, "identical") for i in range(3)]
    assert result["format_a"] == "czi" and result["imagewalk_spec"] == SPEC
    proc = run_cli("compare", path, b2r)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("identical: 3 scene(s)")


def test_one_changed_pixel_is_named_exactly(czi, tmp_path):
    """Scene 1, t=1 c=0 z=1: one pixel moved in the copy; nothing else."""
    path, scenes = czi
    copy = [scenes[0], changed(scenes[1], (1, 0, 1, 5, 9), 7), scenes[2]]
    b2r = synth.write_bioformats2raw(tmp_path / "changed.zarr", copy)
    result = compare(path, b2r)
    assert not result["identical"]
    assert statuses(result) == [
        (0, 0, "identical"),
        (1, 1, "pixels"),
        (2, 2, "identical"),
    ]
    scene = result["scenes"][1]
    assert scene["planes_differ"] == 1 and scene["planes"] == 4
    (diff,) = scene["differences"]
    want = abs(int(scenes[1][1, 0, 1, 5, 9]) - int(copy[1][1, 0, 1, 5, 9]))
    assert diff == {
        "z": 1,
        "c": 0,
        "t": 1,
        "offset": 3,  # Z outer, C, T inner: (z=1, c=0, t=1) is the 4th plane
        "pixels": 1,
        "max_abs_diff": want,
    }
    proc = run_cli("compare", path, b2r)
    assert proc.returncode == 1, proc.stderr
    assert "scene 1 <-> 1: 1 of 4 planes differ" in proc.stdout
    assert f"z=1 c=0 t=1: 1 pixel differs, max |diff| {want}" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "differ: 1 of 3 scene pair(s) not identical"
    js = run_cli("compare", "--json", path, b2r)
    assert js.returncode == 1 and json.loads(js.stdout) == json.loads(
        json.dumps(result)
    )


def test_an_ome_tiff_equals_its_ome_zarr_conversion_and_a_change_shows(tmp_path):
    scene = synth.random_scene((2, 3, 4, 50, 60), "uint16", seed=9)
    tif = synth.write_ome_tiff(tmp_path / "a.ome.tif", scene)
    for fmt in (2, 3):
        zarr_copy = synth.write_ome_zarr(
            tmp_path / f"a{fmt}.ome.zarr", scene, zarr_format=fmt
        )
        assert statuses(compare(tif, zarr_copy)) == [(0, 0, "identical")]
    # three pixels of one plane (z=3, c=2, t=0), by 1, 100 and 1000
    other = scene
    for (y, x), by in zip([(0, 0), (10, 20), (49, 59)], [1, 100, 1000], strict=True):
        other = changed(other, (0, 2, 3, y, x), by)
    # a two-series OME-TIFF and its bioformats2raw tree
    second = synth.random_scene((1, 2, 1, 30, 20), "uint16", seed=10)
    two = synth.write_ome_tiff(tmp_path / "two.ome.tif", [scene, second])
    b2r = synth.write_bioformats2raw(tmp_path / "two.zarr", [scene, second])
    assert statuses(compare(two, b2r)) == [(0, 0, "identical"), (1, 1, "identical")]
    moved = synth.write_ome_zarr(tmp_path / "moved.ome.zarr", other)
    (diff,) = compare(tif, moved)["scenes"][0]["differences"]
    expect = max(
        abs(int(scene[0, 2, 3, y, x]) - int(other[0, 2, 3, y, x]))
        for y, x in [(0, 0), (10, 20), (49, 59)]
    )
    assert (diff["z"], diff["c"], diff["t"], diff["pixels"]) == (3, 2, 0, 3)
    assert diff["max_abs_diff"] == expect


def test_a_dv_equals_its_ome_zarr_conversion(tmp_path):
    """DeltaVision stores rows bottom-up; read top-down (as Bio-Formats
    does), it equals an OME-Zarr of the top-down pixels."""
    cells = synth.random_scene((1, 1, 6, 32, 48), "uint16", seed=7)
    dv = tmp_path / "cells.dv"
    mrc.imwrite(str(dv), cells[0, 0])
    top_down = cells[..., ::-1, :]
    zarr_copy = synth.write_ome_zarr(tmp_path / "cells.ome.zarr", top_down)
    result = compare(dv, zarr_copy)
    assert result["identical"], result
    b2r = synth.write_bioformats2raw(tmp_path / "cells.zarr", [top_down])
    assert compare(dv, b2r)["identical"]
    # the rows as stored (bottom-up) are another image: every plane differs
    wrong = synth.write_ome_zarr(tmp_path / "stored.ome.zarr", cells)
    assert compare(dv, wrong)["scenes"][0]["planes_differ"] == 6


def test_another_dtype_or_shape_is_said(tmp_path):
    scene = synth.random_scene((1, 2, 3, 20, 30), "uint16", seed=4)
    tif = synth.write_ome_tiff(tmp_path / "a.ome.tif", scene)
    wider = synth.write_ome_zarr(tmp_path / "i32.ome.zarr", scene.astype("int32"))
    (entry,) = compare(tif, wider)["scenes"]
    assert entry["status"] == "dtype"
    assert (entry["dtype_a"], entry["dtype_b"]) == ("uint16", "int32")
    cropped = synth.write_ome_zarr(tmp_path / "crop.ome.zarr", scene[..., :25])
    (entry,) = compare(tif, cropped)["scenes"]
    assert entry["status"] == "dims"
    assert (entry["dims_a"]["X"], entry["dims_b"]["X"]) == (30, 25)
    fewer = synth.write_ome_zarr(tmp_path / "z2.ome.zarr", scene[:, :, :2])
    assert compare(tif, fewer)["scenes"][0]["status"] == "dims"
    proc = run_cli("compare", tif, wider)
    assert proc.returncode == 1
    assert "scene 0 <-> 0: dtype differ" in proc.stdout
    assert "B: T=1 C=2 Z=3 Y=20 X=30 int32" in proc.stdout


def test_scene_counts_that_differ_pair_by_content(czi, tmp_path):
    """A conversion that kept two of three series, in another order: each
    pairs with its source scene; the third is unpaired."""
    path, scenes = czi
    b2r = synth.write_bioformats2raw(tmp_path / "two.zarr", [scenes[2], scenes[0]])
    result = compare(path, b2r)
    assert result["pairing"] == "content" and not result["identical"]
    assert statuses(result) == [
        (0, 1, "identical"),
        (1, None, "only_a"),
        (2, 0, "identical"),
    ]
    proc = run_cli("compare", path, b2r)
    assert proc.returncode == 1
    assert "scene 1 <-> -: only in A" in proc.stdout


def test_a_plate_against_its_fields(tmp_path):
    """A plate's fields are its scenes: a field's own store pairs with it by
    content; a changed copy of a field pairs by dims and shows its plane."""
    fields = {
        ("A", "1"): [
            synth.random_scene((1, 1, 2, 16, 16), "uint8", seed=s) for s in (1, 2)
        ],
        ("B", "2"): [synth.random_scene((1, 1, 2, 16, 16), "uint8", seed=3)],
    }
    plate = synth.write_plate(tmp_path / "plate.zarr", fields)
    field = synth.write_ome_zarr(tmp_path / "field.zarr", fields[("A", "1")][1])
    result = compare(field, plate)
    assert result["pairing"] == "content"
    assert statuses(result) == [
        (0, 1, "identical"),
        (None, 0, "only_b"),
        (None, 2, "only_b"),
    ]
    assert compare(field, plate, pairing="index")["scenes"][0]["status"] == "pixels"


def test_pairing_rules():
    from biocodes.sources.base import make_scene

    def scene(i, x):
        return make_scene("p", i, f"s{i}", {"Y": 4, "X": x}, np.dtype("uint8"))

    a = [scene(0, 4), scene(1, 5)]
    b = [scene(0, 5), scene(1, 4), scene(2, 4)]
    assert pair_scenes(a, b) == [(0, 0), (1, 1), (None, 2)]
    # equal codes first, then equal dims and dtype, then unpaired
    assert pair_scenes(a, b, ["x", "y"], ["q", "r", "x"]) == [
        (0, 2),
        (1, 0),
        (None, 1),
    ]


def test_plane_difference_is_exact_for_every_type():
    big = np.array([[np.iinfo("int64").min, 0]], "int64")
    other = np.array([[np.iinfo("int64").max, 0]], "int64")
    assert plane_difference(big, other) == (1, 2**64 - 1)
    u = np.array([[0, 2**64 - 1]], "uint64")
    assert plane_difference(u, u[:, ::-1].copy()) == (2, 2**64 - 1)
    f = np.array([[0.0, 1.5, np.nan]], "float32")
    assert plane_difference(f, f.copy()) == (0, 0)  # the same NaN is equal
    g = np.array([[-0.0, 1.0, np.nan]], "float32")
    assert plane_difference(f, g) == (2, 0.5)  # -0.0 is not 0.0 (bits)
    h = np.array([[0.0, 1.5, 7.0]], "float32")
    assert plane_difference(f, h) == (1, None)  # NaN against a number
    be = np.array([[1, 2]], ">u2")
    assert plane_difference(be, np.array([[1, 5]], "<u2").astype(">u2")) == (1, 3)


def test_cannot_run_is_exit_2_with_one_line(tmp_path):
    tif = synth.write_ome_tiff(
        tmp_path / "a.ome.tif", synth.random_scene((1, 1, 1, 8, 8), seed=1)
    )
    proc = run_cli("compare", tif, tmp_path / "missing.tif")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "missing.tif" in proc.stderr and "Traceback" not in proc.stderr
    junk = tmp_path / "junk.ome.tif"
    junk.write_bytes(b"II*\x00" + bytes(100))
    with pytest.raises(BiocodeError):
        compare(tif, junk)
    assert run_cli("compare", junk, tif).returncode == 2


def test_the_biocode_json_names_the_spec(tmp_path):
    tif = synth.write_ome_tiff(
        tmp_path / "a.ome.tif", synth.random_scene((1, 1, 1, 8, 8), seed=1)
    )
    assert SPEC == "IEP-0018 (Draft)"
    assert biocode(tif)["imagewalk_spec"] == SPEC
    proc = run_cli("biocode", "--json", tif)
    assert json.loads(proc.stdout)["imagewalk_spec"] == SPEC


# --- OMERO: the zarr endpoint of OMERO.web and omero-cli-zarr's export ---


def test_an_omero_image_over_omero_web_zarr(tmp_path):
    """An OMERO image through OMERO.web's zarr endpoint
    (/zarr/v0.4/image/<id>.zarr, only that plugin's URLs answer) has the
    codes of the file it was imported from, and compares identical to it;
    a changed pixel in OMERO is named."""
    scene = synth.random_scene((1, 2, 3, 40, 56), "uint16", seed=11)
    tif = synth.write_ome_tiff(tmp_path / "imported.ome.tif", scene)
    web = tmp_path / "web"
    synth.write_omero_zarr(web / "zarr/v0.4/image/51.zarr", scene, 51)
    synth.write_omero_zarr(
        web / "zarr/v0.4/image/52.zarr", changed(scene, (0, 1, 2, 39, 55), 3), 52
    )
    with omero_web_zarr_server(web) as omero:
        url = f"{omero}/zarr/v0.4/image/51.zarr"
        remote = biocode(url)
        assert remote["iscc_code"] is None and "list" in remote["note"]
        local = biocode(tif)
        assert [p["iscc_code"] for p in remote["parts"]] == [
            p["iscc_code"] for p in local["parts"]
        ]
        assert remote["parts"][0]["dims"] == local["parts"][0]["dims"]
        assert compare(tif, url)["identical"]
        proc = run_cli("compare", tif, url)
        assert proc.returncode == 0, proc.stderr
        result = compare(tif, f"{omero}/zarr/v0.4/image/52.zarr")
        (diff,) = result["scenes"][0]["differences"]
        assert (diff["z"], diff["c"], diff["t"], diff["pixels"]) == (2, 1, 0, 1)
        proc = run_cli("biocode", url)
        assert proc.returncode == 0, proc.stderr
        assert local["parts"][0]["iscc_code"] in proc.stdout


def test_an_omero_cli_zarr_export_over_http(tmp_path):
    """``omero zarr export`` writes <id>.zarr (NGFF 0.4, zarr v2, "/" keys,
    size-1 axes left out, 1024-pixel tiles): on disk and over HTTP it
    compares identical to the imported file."""
    scene = synth.random_scene((3, 1, 1, 1100, 130), "uint8", seed=12)
    tif = synth.write_ome_tiff(tmp_path / "imported.ome.tif", scene)
    export = synth.write_omero_zarr(tmp_path / "out/61.zarr", scene, 61, style="cli")
    assert compare(tif, export)["identical"]
    with http_server(tmp_path / "out") as web:
        result = compare(tif, f"{web}/61.zarr")
        assert result["identical"], result
        assert result["scenes"][0]["dims_b"] == {
            "T": 3,
            "C": 1,
            "Z": 1,
            "Y": 1100,
            "X": 130,
        }


# --- memory ---

Z, Y, X = 24, 1024, 1024  # 24 planes of 2 MiB each side


@pytest.mark.slow
def test_peak_memory_is_a_few_planes(tmp_path):
    def planes(shift):
        for z in range(Z):
            p = np.full((Y, X), z * 31, np.uint16)
            if z == Z - 1:
                p[0, 0] += shift
            yield p

    a, b = tmp_path / "a.ome.tif", tmp_path / "b.ome.tif"
    for path, shift in ((a, 0), (b, 5)):
        tifffile.imwrite(
            path,
            planes(shift),
            shape=(Z, Y, X),
            dtype="uint16",
            ome=True,
            metadata={"axes": "ZYX"},
        )
    tracemalloc.start()
    try:
        result = compare(a, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (diff,) = result["scenes"][0]["differences"]
    assert (diff["z"], diff["pixels"], diff["max_abs_diff"]) == (Z - 1, 1, 5)
    plane = Y * X * 2
    # A's plane; B's in hand, one waiting and one being read (with the
    # reader's buffer); the mask: a few planes, never a scene (48 planes)
    assert peak < 7 * plane, f"peak {peak / plane:.1f} planes"
    shutil.rmtree(tmp_path)


def test_missing_chunks_are_refused_unless_allowed(tmp_path):
    """bioio-ome-zarr's writer leaves out all-zero chunks: an error, as in
    ``biocode``, unless --allow-missing-chunks reads them as the fill value."""
    scene = synth.random_scene((1, 1, 3, 16, 16), "uint8", seed=2)
    scene[0, 0, 1] = 0
    tif = synth.write_ome_tiff(tmp_path / "a.ome.tif", scene)
    store = synth.write_ome_zarr(tmp_path / "a.ome.zarr", scene, zarr_format=2)
    refused = run_cli("compare", tif, store)
    assert refused.returncode == 2 and "missing" in refused.stderr, refused.stderr
    allowed = run_cli("compare", "--allow-missing-chunks", tif, store)
    assert allowed.returncode == 0, allowed.stderr
