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
from biocodes.infra.errors import UnreadableError, UnsupportedError
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


# -- no read of aicspylibczi's that can abort the process -------------------


def write_scenes_czi(path, sizes, scenes=None):
    """Single-tile gray uint8 scenes of ``sizes`` side by side, with the
    scene indices ``scenes`` (default 0, 1, ...); scene i holds i + 1."""
    with pyczi.create_czi(str(path), exist_ok=True) as doc:
        x0 = 0
        for i, (y, x) in enumerate(sizes):
            s = i if scenes is None else scenes[i]
            a = np.full((y, x), i + 1, np.uint8)
            doc.write(data=a, plane={"T": 0, "C": 0, "Z": 0}, scene=s, location=(x0, 0))
            x0 += x + 16
    return path


def test_planes_are_read_with_pylibczirw(tmp_path):
    """aicspylibczi 4.0.1's read_image sizes its buffer from the first
    subblock: a later, larger scene corrupted the heap and aborted the
    process. The planes come from pylibCZIrw, which says so in ``decoder``.
    In its own process, so an abort fails only this test."""
    import json

    from conftest import run_cli

    sizes = [(4, 4), (8, 8)]
    path = write_scenes_czi(tmp_path / "s.czi", sizes)
    proc = run_cli("biocode", "--json", path)
    assert proc.returncode == 0, proc.stderr[-300:]
    parts = json.loads(proc.stdout.splitlines()[0])["parts"]
    want = [np.full((1, 1, 1, y, x), i + 1, np.uint8) for i, (y, x) in enumerate(sizes)]
    assert [p["iscc_code"] for p in parts] == synth.expected_biocode(want)
    assert all(p["decoder"].startswith("pylibczirw") for p in parts)


def test_a_fallback_that_would_abort_is_refused_by_name(tmp_path):
    """Scene indices 0 and 2 (not contiguous: the CZI adapter does not map
    it) of other sizes: the bioio-czi fallback would read them with
    aicspylibczi's read_image, which overflows on the larger one. Refused
    before that call, naming why; the check itself says which layouts."""
    from biocodes.sources.czi import unsafe_for_aicspylibczi

    path = write_scenes_czi(tmp_path / "gap.czi", [(4, 4), (9, 8)], scenes=[0, 2])
    assert "8x9" in unsafe_for_aicspylibczi(str(path))
    with pytest.raises(UnsupportedError, match=r"differ in size \(4x4, 8x9\)"):
        open_source(path)
    same = write_scenes_czi(tmp_path / "same.czi", [(4, 4), (4, 4)])
    assert unsafe_for_aicspylibczi(str(same)) is None
