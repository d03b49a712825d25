"""CZI scenes are the subblock directory's, mosaic scenes included.

pylibCZIrw (the writer in the lock) writes no scene list into the metadata.
A file with a mosaic scene (tiles with an M index) and a single-tile scene
went to bioio-czi, which lists scenes from the metadata and took the whole
file as one mosaic: the second scene was lost, exit 0. The truth is the
arrays written: each mosaic plane is its tiles placed at their positions.
"""

from __future__ import annotations

import numpy as np
import pytest
from pylibCZIrw import czi as pyczi

from biocodes import synth
from biocodes.core.fingerprint import biocode, fingerprint_scene
from biocodes.infra.errors import UnreadableError
from biocodes.sources import open_source
from biocodes.sources.bioio import BioioSource

#: where the 2x2 tiles of the mosaic scene go (x, y), each 20 wide, 16 high
TILES = [(0, 0), (20, 0), (0, 16), (20, 16)]


def write_mosaic_czi(path, tiles, single=None, single_at=(100, 0)):
    """Scene 0: a 2x2 mosaic of ``tiles`` (M, T, C, Z, 16, 20); scene 1, if
    given: one tile (T, C, Z, Y, X) at ``single_at``."""
    with pyczi.create_czi(str(path), exist_ok=True) as doc:
        for t, c, z in np.ndindex(tiles.shape[1:4]):
            plane = {"T": t, "C": c, "Z": z}
            for m, (x, y) in enumerate(TILES):
                doc.write(data=tiles[m, t, c, z], plane=plane, location=(x, y))
            if single is not None:
                where = single_at
                doc.write(data=single[t, c, z], plane=plane, scene=1, location=where)
    return path


def stitched(tiles: np.ndarray) -> np.ndarray:
    canvas = np.zeros((*tiles.shape[1:4], 32, 40), tiles.dtype)
    for m, (x, y) in enumerate(TILES):
        canvas[..., y : y + 16, x : x + 20] = tiles[m]
    return canvas


@pytest.fixture
def arrays():
    rng = np.random.default_rng(3)
    tiles = rng.integers(0, 65535, (4, 2, 2, 1, 16, 20), dtype="uint16")
    single = rng.integers(0, 65535, (2, 2, 1, 24, 18), dtype="uint16")
    return tiles, single


def test_a_mosaic_scene_and_a_single_tile_scene_are_both_read(tmp_path, arrays):
    tiles, single = arrays
    path = write_mosaic_czi(tmp_path / "two.czi", tiles, single)
    result = biocode(path)
    assert result["format"] == "czi"
    assert [p["dims"] for p in result["parts"]] == [
        {"T": 2, "C": 2, "Z": 1, "Y": 32, "X": 40},
        {"T": 2, "C": 2, "Z": 1, "Y": 24, "X": 18},
    ]
    truth = synth.expected_biocode([stitched(tiles), single])
    assert [p["iscc_code"] for p in result["parts"]] == truth


def test_a_one_scene_mosaic_keeps_the_code_bioio_czi_gave(tmp_path, arrays):
    """The native mosaic read changes no code of a file bioio-czi read right."""
    tiles, _ = arrays
    path = str(write_mosaic_czi(tmp_path / "one.czi", tiles))
    truth = synth.expected_biocode(stitched(tiles))
    with open_source(path) as source:
        assert type(source).__name__ == "CziSource"
        assert [
            fingerprint_scene(source, s)["iscc_code"] for s in source.scenes
        ] == truth
    with BioioSource(path, content="czi") as plugin:
        assert [
            fingerprint_scene(plugin, s)["iscc_code"] for s in plugin.scenes
        ] == truth


def test_a_fallback_that_loses_a_scene_is_an_error(tmp_path, arrays):
    """Scenes whose regions overlap cannot be drawn apart: the file goes to
    bioio-czi, which lists 1 scene where the directory holds 2."""
    tiles, single = arrays
    path = write_mosaic_czi(tmp_path / "overlap.czi", tiles, single, (10, 8))
    with pytest.raises(UnreadableError, match=r"lists 1 scene.*directory holds 2"):
        open_source(str(path))


def test_an_rgb_mosaic_is_walked_red_green_blue(tmp_path):
    """Bgr24 tiles drawn into the mosaic, samples walked R, G, B as in every
    CZI (the writer is handed BGR, as CZI stores it)."""
    rng = np.random.default_rng(5)
    tiles = rng.integers(0, 255, (4, 1, 1, 1, 16, 20, 3), dtype="uint8")
    single = rng.integers(0, 255, (1, 1, 1, 24, 18, 3), dtype="uint8")
    bgr = [np.ascontiguousarray(a[..., ::-1]) for a in (tiles, single)]
    path = write_mosaic_czi(tmp_path / "rgb.czi", *bgr)
    canvas = np.zeros((1, 1, 1, 32, 40, 3), "uint8")
    for m, (x, y) in enumerate(TILES):
        canvas[..., y : y + 16, x : x + 20, :] = tiles[m]
    result = biocode(path)
    assert [p["dims"]["C"] for p in result["parts"]] == [3, 3]
    truth = synth.expected_biocode([canvas, single])
    assert [p["iscc_code"] for p in result["parts"]] == truth
