"""Views, ISCC-IMAGE and ISCC-MIXED: same pixels same codes, similar scenes near."""

import json

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from biocodes import synth
from biocodes.core.fingerprint import imagecode
from biocodes.views.build import ViewOptions, distance, image_code, mixed_code
from biocodes.views.thumbnails import to_uint8

#: Hamming distances (bits of 64) between ISCC-MIXED codes. Copies of a scene
#: (re-saved, cropped by a few pixels, rescaled to 8 bit) measured 0-3 bits;
#: other scenes 18-33 bits.
NEAR = 8
FAR = 16


def views_of(path, **options):
    return imagecode(path, ViewOptions(**options))["parts"]


def strip(parts):
    """What must be equal across formats: views and mixed codes, no file names."""
    return [
        (p["iscc_mixed"], [{k: v for k, v in w.items()} for w in p["views"]])
        for p in parts
    ]


def test_same_pixels_give_the_same_views_in_every_format(tmp_path):
    a = synth.structured_scene((2, 3, 4, 120, 160), "uint16", seed=3)
    b = synth.structured_scene((1, 2, 3, 90, 70), "uint16", seed=4)
    files = [
        synth.write_ome_tiff(tmp_path / "s.ome.tif", [a, b]),
        synth.write_ome_tiff(tmp_path / "z.ome.tif", [a, b], compression="zlib"),
        synth.write_czi(tmp_path / "s.czi", [a, b]),
        synth.write_bioformats2raw(tmp_path / "s.zarr", [a, b], zarr_format=3),
    ]
    results = [strip(views_of(f)) for f in files]
    assert all(r == results[0] for r in results[1:])
    (mixed_a, views_a), (mixed_b, _) = results[0]
    assert [v["strategy"] for v in views_a][:2] == ["composite", "mip"]
    assert mixed_a != mixed_b
    # the OME-Zarr of one scene agrees too
    single = synth.write_ome_zarr(tmp_path / "a.ome.zarr", a, zarr_format=2)
    assert strip(views_of(single)) == results[0][:1]


def save(tmp_path, name, array, **kw):
    return synth.write_ome_tiff(tmp_path / f"{name}.ome.tif", array, **kw)


@pytest.mark.parametrize("shape", [(1, 2, 5, 256, 256), (1, 1, 1, 200, 240)])
def test_copies_are_near_and_other_scenes_far(tmp_path, shape):
    a = synth.structured_scene(shape, "uint16", seed=1)
    original = views_of(save(tmp_path, "a", a))[0]["iscc_mixed"]
    copies = {
        "recompressed": save(tmp_path, "zlib", a, compression="zlib"),
        "cropped": save(tmp_path, "crop", a[..., 4:-4, 3:-5]),
        "u8": save(tmp_path, "u8", np.rint(a / 257).astype(np.uint8)),
    }
    for name, path in copies.items():
        d = distance(original, views_of(path)[0]["iscc_mixed"])
        assert d <= NEAR, f"{name}: {d} bits"
    assert views_of(copies["recompressed"])[0]["iscc_mixed"] == original
    for seed in (2, 3, 4):
        other = synth.structured_scene(shape, "uint16", seed=seed)
        d = distance(
            original, views_of(save(tmp_path, f"o{seed}", other))[0]["iscc_mixed"]
        )
        assert d >= FAR, f"seed {seed}: {d} bits"


def test_eight_bit_rules():
    f = np.array([[np.nan, -np.inf, np.inf, 0.0], [1.0, 2.0, 3.0, 4.0]])
    out = to_uint8(f)
    assert out[0, 0] == 0 and out[0, 1] == 0 and out[0, 2] == 255
    assert out[1, 0] < out[1, 1] < out[1, 2] < out[1, 3]
    assert not to_uint8(np.full((4, 4), 7, np.uint16)).any()  # flat is black
    assert not to_uint8(np.full((4, 4), np.nan)).any()


def test_single_view_mixed_code_is_the_code_given_twice(tmp_path):
    a = synth.structured_scene((1, 1, 1, 64, 64), "uint8", seed=5)
    (part,) = views_of(save(tmp_path, "one", a))
    assert len(part["views"]) == 1
    code = part["views"][0]["iscc_image"]
    assert part["iscc_mixed"] == mixed_code([code, code])


def test_best_focus_and_representative_choose_planes(tmp_path):
    a = synth.structured_scene((1, 1, 7, 128, 128), "uint16", seed=6)
    a[0, 0, 3] = 0  # the middle (and sharpest) plane is empty
    parts = views_of(save(tmp_path, "f", a), dedupe_distance=-1, max_views=10)
    by = {v["strategy"]: v for v in parts[0]["views"][::-1]}
    # synthetic blur grows away from z=3; with z=3 empty, z=2 or z=4 is sharpest
    assert by["best_focus"]["z"] in (2, 4)
    rep = [v for v in parts[0]["views"] if v["strategy"] == "representative"]
    assert rep[0]["z"] in (2, 4)  # nearest non-flat plane to the middle
    assert all(v["z"] != 3 for v in rep)


def test_time_point_and_limits(tmp_path):
    a = synth.structured_scene((3, 2, 2, 64, 64), "uint16", seed=7)
    path = save(tmp_path, "t", a)
    assert {v["t"] for v in views_of(path, time_point=2)[0]["views"]} == {2}
    assert {v["t"] for v in views_of(path, time_point=99)[0]["views"]} == {2}
    assert len(views_of(path, max_views=2)[0]["views"]) == 2
    many = views_of(path, max_views=20, dedupe_distance=-1)[0]["views"]
    kept = views_of(path, max_views=20, dedupe_distance=64)[0]["views"]
    assert len(kept) == 1 < len(many)
    only = views_of(path, strategies=("mip",))[0]["views"]
    assert {v["strategy"] for v in only} == {"mip"}


def test_dedupe_drops_identical_views(tmp_path):
    # two identical channels: their mips have the same code, one is kept
    a = synth.structured_scene((1, 1, 3, 96, 96), "uint16", seed=8)
    a = np.concatenate([a, a], axis=1)
    codes = [v["iscc_image"] for v in views_of(save(tmp_path, "d", a))[0]["views"]]
    assert len(codes) == len(set(codes))


def test_rgb_composite_is_shown_as_stored(tmp_path):
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[..., 0] = 200  # red, slightly dim: no stretch may change it
    rgb[10:30, 10:40, 1] = 90
    path = synth.write_tiff(tmp_path / "rgb.tif", rgb)
    parts = views_of(path, thumbnails=str(tmp_path / "thumbs"), thumbnail_size=50)
    comp = parts[0]["views"][0]
    assert comp["strategy"] == "composite" and comp["channels"] == [0, 1, 2]
    png = np.asarray(Image.open(comp["thumbnail"]))
    assert png.shape == (40, 50, 3)
    assert (png[0, 0] == [200, 0, 0]).all() and (png[20, 20] == [200, 90, 0]).all()
    assert comp["iscc_image"] == image_code(rgb)


def test_thumbnails_are_small_pngs(tmp_path):
    a = synth.structured_scene((1, 2, 2, 600, 900), "uint16", seed=9)
    parts = views_of(save(tmp_path, "big", a), thumbnails=str(tmp_path / "t"))
    for v in parts[0]["views"]:
        with Image.open(v["thumbnail"]) as im:
            assert max(im.size) == 256 and im.format == "PNG"


def test_cli_imagecode_views_and_scene_previews(tmp_path):
    a = synth.structured_scene((1, 2, 3, 80, 90), "uint16", seed=10)
    b = synth.structured_scene((1, 1, 1, 50, 40), "uint8", seed=11)
    path = synth.write_ome_tiff(tmp_path / "two.ome.tif", [a, b])
    proc = run_cli(
        "imagecode", "--json", "--max-views", "2", "-o", tmp_path / "o", path
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [len(p["views"]) for p in result["parts"]] == [2, 1]
    assert all(p["iscc_mixed"].startswith("ISCC:EQ") for p in result["parts"])
    assert len(list((tmp_path / "o" / "two.ome.tif").glob("*.png"))) == 3
    assert result["parts"] == views_of(
        path, max_views=2, thumbnails=str(tmp_path / "o" / "two.ome.tif")
    )

    proc = run_cli("views", "--strategies", "mip,representative", path)
    assert (
        proc.returncode == 0 and "mip" in proc.stdout and "composite" not in proc.stdout
    )
    proc = run_cli("views", "--strategies", "mip,nope", path)
    assert proc.returncode == 2 and "unknown view strategies" in proc.stderr

    proc = run_cli("scenes", "-o", tmp_path / "s", path)
    assert proc.returncode == 0, proc.stderr
    pngs = sorted((tmp_path / "s").glob("*.png"))
    assert [p.name for p in pngs] == [
        "two.ome.tif.scene0.png",
        "two.ome.tif.scene1.png",
    ]


def test_bad_input_gets_an_error_not_views(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    proc = run_cli("imagecode", "--json", bad)
    assert proc.returncode == 1
    assert "error" in json.loads(proc.stdout)
    assert len(proc.stderr.strip().splitlines()) == 1
