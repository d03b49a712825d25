"""Cross-format identity: the same arrays give the same codes in every format."""

from pathlib import Path

import numpy as np
import pytest
from conftest import DTYPES

from biocodes import synth
from biocodes.core.fingerprint import biocode
from biocodes.sources import open_source


def codes(path) -> list[str]:
    return [p["iscc_code"] for p in biocode(path)["parts"]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_dtypes_in_all_formats(tmp_path, dtype):
    a = synth.random_scene((2, 2, 3, 20, 24), dtype, seed=7)
    expected = synth.expected_biocode(a)
    written = [
        synth.write_ome_tiff(tmp_path / "a.ome.tif", a),
        synth.write_ome_tiff(tmp_path / "z.ome.tif", a, compression="zlib"),
        synth.write_ome_zarr(tmp_path / "v2.ome.zarr", a, zarr_format=2),
        synth.write_ome_zarr(tmp_path / "v3.ome.zarr", a, zarr_format=3),
        synth.write_imagej_tiff(tmp_path / "ij.tif", a)
        if dtype in ("uint8", "uint16", "float32")
        else None,
        synth.write_czi(tmp_path / "a.czi", a)
        if dtype in ("uint8", "uint16", "float32")
        else None,
    ]
    for path in filter(None, written):
        assert codes(path) == expected, path.name
    # a plain TIFF holds a ZYX stack: compare with the same stack as TCZYX
    stack = a[0, 0]
    tif = synth.write_tiff(tmp_path / "stack.tif", stack)
    assert codes(tif) == synth.expected_biocode(stack[None, None])


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_png_gray(tmp_path, dtype):
    plane = synth.random_scene((30, 40), dtype, seed=3)
    path = synth.write_png(tmp_path / "g.png", plane)
    assert codes(path) == synth.expected_biocode(plane[None, None, None])


def test_multi_scene_files_of_different_shapes(tmp_path):
    a = synth.random_scene((1, 2, 3, 32, 48), "uint16", seed=1)
    b = synth.random_scene((3, 1, 1, 20, 30), "uint16", seed=2)
    expected = synth.expected_biocode([a, b])
    assert codes(synth.write_ome_tiff(tmp_path / "m.ome.tif", [a, b])) == expected
    assert codes(synth.write_czi(tmp_path / "m.czi", [a, b])) == expected
    assert codes(synth.write_bioformats2raw(tmp_path / "b2r", [a, b])) == expected
    assert codes(synth.write_bioformats2raw(tmp_path / "b3", [a, b], 3)) == expected


def test_rgb_samples_are_channels_in_every_format(tmp_path):
    rgb = synth.random_scene((30, 40, 3), "uint8", seed=5)
    as_channels = rgb.transpose(2, 0, 1)[None, :, None]  # T C Z Y X with C = samples
    expected = synth.expected_biocode(as_channels)
    assert synth.expected_biocode(rgb[None, None, None]) == expected
    for path in [
        synth.write_png(tmp_path / "c.png", rgb),
        synth.write_tiff(tmp_path / "c.tif", rgb),
        synth.write_ome_tiff(tmp_path / "c.ome.tif", rgb[None, None, None]),
        synth.write_czi(tmp_path / "c.czi", rgb[None, None, None]),
        synth.write_ome_zarr(tmp_path / "c.ome.zarr", as_channels),
    ]:
        assert codes(path) == expected, path.name


def test_zarr_without_suffix_and_full_resolution_level(tmp_path):
    a = synth.random_scene((1, 1, 2, 64, 64), "uint16", seed=9)
    path = synth.write_ome_zarr(tmp_path / "plainname", a, zarr_format=3, levels=3)
    assert codes(path) == synth.expected_biocode(a)
    with open_source(path) as source:
        assert source.scenes[0].size_y == 64


TIFF_LAYOUTS = {
    "zstack.tif": lambda: synth.random_scene((5, 10, 12), "uint16", seed=1),
    "yx.tif": lambda: synth.random_scene((10, 12), "int16", seed=1),
    "rgb.tif": lambda: synth.random_scene((10, 12, 3), "uint8", seed=1),
}


def test_tiff_unnamed_axes_walk_pages_in_stored_order(tmp_path):
    """Class: axis guesses reorder planes (issue 16, item 4). tifffile's
    "shaped" description records (2, 10, 12, 3) but no axes: bioio guesses
    C=2, Z=10 and walks z outer, c inner; the pages are walked in stored
    order instead, as T (Bio-Formats reads 20 pages as T), so the code is
    that of the 20 pages in file order."""
    a = synth.random_scene((2, 10, 12, 3), "uint8", seed=1)
    path = synth.write_tiff(tmp_path / "shaped.tif", a)
    with open_source(path) as source:
        (scene,) = source.scenes
    assert (scene.size_t, scene.size_c, scene.size_z) == (20, 1, 1)
    assert codes(path) == synth.expected_biocode(a.reshape(1, 1, 20, 12, 3))


@pytest.mark.parametrize("name", sorted(TIFF_LAYOUTS))
def test_tiff_dims_match_bioio(tmp_path, name):
    """Our page mapping reports the dims bioio reports for the same TIFF,
    except that a plain page sequence is T (as Bio-Formats reads it, see
    tests/test_tiff_routes.py), where bioio-tifffile says Z."""
    import bioio

    path = synth.write_tiff(tmp_path / name, TIFF_LAYOUTS[name]())
    img = bioio.BioImage(path)
    dims = dict(zip(img.dims.order, img.dims.shape))
    with open_source(path) as source:
        scene = source.scenes[0]
    assert source.format == "tiff"
    assert scene.size_c == dims["C"] * dims.get("S", 1)
    dims["T"], dims["Z"] = dims["T"] * dims["Z"], 1  # the pages: T
    assert (scene.size_t, scene.size_z, scene.size_y, scene.size_x) == tuple(
        dims[k] for k in "TZYX"
    )


def test_ome_tiff_and_imagej_dims(tmp_path):
    a = synth.random_scene((2, 3, 4, 8, 9), "uint16", seed=1)
    for path in [
        synth.write_ome_tiff(tmp_path / "o.ome.tif", a),
        synth.write_imagej_tiff(tmp_path / "i.tif", a),
    ]:
        with open_source(path) as source:
            s = source.scenes[0]
            assert (s.size_t, s.size_c, s.size_z, s.size_y, s.size_x) == a.shape


def test_iter_planes_api(tmp_path):
    import biocodes

    a = synth.random_scene((1, 2, 2, 4, 5), "uint8", seed=1)
    path = synth.write_ome_tiff(tmp_path / "p.ome.tif", a)
    planes = list(biocodes.iter_planes(path))
    assert [(p.scene_index, p.z, p.c, p.t) for p in planes] == [
        (0, 0, 0, 0),
        (0, 0, 1, 0),
        (0, 1, 0, 0),
        (0, 1, 1, 0),
    ]
    np.testing.assert_array_equal(planes[1].array, a[0, 1, 0])


def test_example_repository_codes_agree(tmp_path):
    from biocodes.example import make_example

    paths = {Path(p).name: p for p in make_example(tmp_path)}
    tif = codes(paths["cells.ome.tif"])
    assert codes(paths["cells.ome.zarr"]) == tif
    two = codes(paths["two-scenes.ome.tif"])
    assert codes(paths["two-shapes.czi"]) == two
    assert codes(paths["series.zarr"]) == two[::-1]
