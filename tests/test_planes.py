"""Plane digests: which planes changed, in a night's changes, the report and
verify, from the catalogue's 8 bytes per plane (never the old pixels)."""

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from PIL import Image
from test_workflow import run_workflow

from biocodes import synth
from biocodes.core.planediff import describe_planes, image_difference, plane_groups
from biocodes.repository.similar import similar
from biocodes.views.build import plane_code

NO_EXAMPLE = {"example": {"generate": False}, "shards": 2}


def offsets(planes, size_c, size_t):
    return [z * size_c * size_t + c * size_t + t for z, c, t in planes]


def test_plane_groups_are_compact():
    assert plane_groups(offsets([(2, 1, 0)], 2, 1), 2, 1) == ["z=2 c=1 t=0"]
    three = offsets([(12, 0, 0), (12, 1, 0), (12, 2, 0)], 3, 1)
    assert describe_planes(three, 64, 3, 1) == "3 of 64 planes differ: z=12 c=0..2 t=0"
    # a block of Z planes with the same channels and time points is one group
    block = offsets([(z, c, t) for z in (3, 4, 5) for c in (0, 1) for t in (1,)], 2, 3)
    assert plane_groups(block, 2, 3) == ["z=3..5 c=0..1 t=1"]
    # time points with a gap, and a Z plane that differs otherwise
    mixed = offsets([(0, 0, 0), (0, 0, 2), (1, 1, 1)], 2, 3)
    assert plane_groups(mixed, 2, 3) == ["z=0 c=0 t=0,2", "z=1 c=1 t=1"]
    many = offsets([(z, 0, 0) for z in range(0, 40, 2)], 1, 1)
    text = describe_planes(many, 40, 1, 1)
    assert text.startswith("20 of 40 planes differ: z=0 c=0 t=0; z=2 c=0 t=0")
    assert text.endswith("and 12 more groups")


def _scene(index, code, digests, shape=(2, 1, 1, 4, 4), dtype="uint8"):
    return {
        "scene_index": index,
        "iscc_code": code,
        "dtype": dtype,
        "plane_digests": digests,
        **dict(zip(["size_z", "size_c", "size_t", "size_y", "size_x"], shape)),
    }


def test_image_difference_names_scenes_shapes_and_unknown_planes():
    a, b = bytes(8), b"\1" * 8
    before = [_scene(0, "A", a + a), _scene(1, "B", a + a)]
    after = [_scene(0, "A", a + a), _scene(1, "C", a + b)]
    assert image_difference(before, after) == (
        "scene 1: 1 of 2 planes differs: z=1 c=0 t=0"
    )
    after = [_scene(0, "A2", a + a, shape=(2, 1, 1, 4, 8))]
    assert image_difference(before[:1], after) == (
        "shape differs: ZCTYX 2x1x1x4x4 -> 2x1x1x4x8"
    )
    after = [_scene(0, "A2", a + a, dtype="uint16")]
    assert image_difference(before[:1], after) == "pixel type differs: uint8 -> uint16"
    old = [_scene(0, "A", None)]  # a catalogue from before plane digests
    assert "not known" in image_difference(old, [_scene(0, "A2", a + b)])
    assert image_difference(before, before[:1]) == "scene 1 gone"


@pytest.fixture(scope="module")
def one_plane_changed(tmp_path_factory):
    """Two nights: between them one plane (z=2 c=1 t=0) of one z-stack of
    two changes in place; the other image and every other plane stay."""
    tmp = tmp_path_factory.mktemp("planes")
    repo = tmp / "repo"
    repo.mkdir()
    stack = synth.structured_scene((1, 2, 4, 48, 40), "uint16", seed=3)  # TCZYX
    target = synth.write_ome_tiff(repo / "stack.ome.tif", stack)
    synth.write_ome_tiff(
        repo / "other.ome.tif", synth.structured_scene((1, 1, 3, 32, 32), seed=4)
    )
    proc = run_workflow(tmp, NO_EXAMPLE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    edited = stack.copy()
    edited[0, 1, 2, 10, 10:13] += 1  # three pixels of z=2 c=1 t=0
    st = os.stat(target)
    synth.write_ome_tiff(target, edited)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    proc = run_workflow(tmp, NO_EXAMPLE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, target


def test_a_night_records_the_one_plane_that_changed(one_plane_changed):
    tmp, _ = one_plane_changed
    cat = tmp / "results" / "catalogue"
    scenes = pq.read_table(cat / "scenes.parquet").to_pylist()
    assert {len(s["plane_digests"]) for s in scenes} == {8 * 8, 3 * 8}
    runs = pq.read_table(cat / "runs.parquet").to_pylist()
    changes = [
        c
        for c in pq.read_table(cat / "changes.parquet").to_pylist()
        if c["run_id"] == runs[-1]["run_id"]
    ]
    assert [(c["path"], c["change"]) for c in changes] == [("stack.ome.tif", "changed")]
    assert changes[0]["planes_changed"] == "1 of 8 planes differs: z=2 c=1 t=0"
    page = (tmp / "results" / "report.html").read_text()
    assert "1 of 8 planes differs: z=2 c=1 t=0" in page


def test_verify_names_the_plane_that_differs(one_plane_changed):
    tmp, target = one_plane_changed
    stack = synth.structured_scene((1, 2, 4, 48, 40), "uint16", seed=3)
    edited = stack.copy()
    edited[0, 0, 3, 0, 0] ^= 1  # z=3 c=0 t=0, behind the catalogue's back
    edited[0, 1, 2, 10, 10:13] += 1  # as catalogued
    st = os.stat(target)
    synth.write_ome_tiff(target, edited)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    proc = run_cli("verify", tmp / "results")
    assert proc.returncode == 1
    assert (
        f"{target}: FAILED (pixels differ in scene(s) 0: "
        "1 of 8 planes differs: z=3 c=0 t=0)"
    ) in proc.stdout


def z_stack(seed=50, size_z=8):
    """Planes that share structure (as neighbouring planes of a stack do)
    but each its own too, TCZYX."""
    common = synth.structured_scene((1, 2, 1, 200, 240), seed=seed).astype(float)
    planes = [
        0.5 * common
        + 0.5 * synth.structured_scene((1, 2, 1, 200, 240), seed=seed + 10 + z)
        for z in range(size_z)
    ]
    return np.concatenate(planes, axis=2).astype(np.uint16)


def export(plane, path, scale):
    """What a person does in an image viewer: 8 bits between min and max,
    rescaled, saved as a JPEG."""
    p = plane.astype(float)
    img = Image.fromarray(((p - p.min()) / (p.max() - p.min()) * 255).astype(np.uint8))
    size = (round(img.width * scale), round(img.height * scale))
    img.resize(size, Image.Resampling.LANCZOS).convert("RGB").save(path, quality=70)
    return path


@pytest.fixture(scope="module")
def with_plane_images(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plane_images")
    repo = tmp / "repo"
    repo.mkdir()
    synth.write_ome_tiff(repo / "stack.ome.tif", z_stack())
    other = synth.structured_scene((1, 1, 2, 200, 240), seed=7)
    synth.write_ome_tiff(repo / "other.ome.tif", other)
    config = {**NO_EXAMPLE, "views": {"plane_images": True, "thumbnails": False}}
    proc = run_workflow(tmp, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp


def test_plane_images_are_catalogued_per_plane(with_plane_images):
    cat = with_plane_images / "results" / "catalogue"
    rows = pq.read_table(cat / "plane_images.parquet").to_pylist()
    assert len(rows) == 2 * 8 + 2
    stack = z_stack()
    mine = [r for r in rows if r["z"] == 5 and r["c"] == 1]
    assert len(mine) == 1 and mine[0]["scene_index"] == 0 and mine[0]["t"] == 0
    assert mine[0]["iscc_image"] == plane_code(stack[0, 1, 5])


def test_similar_names_the_scene_and_plane_of_an_exported_picture(
    with_plane_images, tmp_path
):
    results = with_plane_images / "results"
    picture = export(z_stack()[0, 1, 5], tmp_path / "figure.jpg", 0.6)
    proc = run_cli("similar", results, picture)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "plane_image" in first and "stack.ome.tif#scene0 z=5 c=1 t=0" in first
    got = similar(results / "catalogue", str(picture))
    assert (got[0]["path"], got[0]["z"], got[0]["c"], got[0]["t"]) == (
        "stack.ome.tif",
        5,
        1,
        0,
    )
    # an unrelated picture is near nothing
    unrelated = synth.structured_scene((1, 1, 1, 200, 240), seed=99)[0, 0, 0]
    proc = run_cli("similar", results, export(unrelated, tmp_path / "no.jpg", 0.6))
    assert proc.returncode == 1 and proc.stdout == ""


def test_imagecode_plane_images(tmp_path):
    stack = z_stack(size_z=3)
    path = synth.write_ome_tiff(tmp_path / "s.ome.tif", stack)
    proc = run_cli("imagecode", "--plane-images", "--json", path)
    assert proc.returncode == 0, proc.stderr
    part = json.loads(proc.stdout)["parts"][0]
    assert [(p["z"], p["c"], p["t"]) for p in part["plane_images"]] == [
        (z, c, 0) for z in range(3) for c in range(2)
    ]
    assert part["plane_images"][3]["iscc_image"] == plane_code(stack[0, 1, 1])
    proc = run_cli("imagecode", "--json", path)
    assert "plane_images" not in json.loads(proc.stdout)["parts"][0]
