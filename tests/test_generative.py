"""The mechanism that finds the next class of reader fault (issue 24).

Random small images go through every writer in the lock (tests/
generative_writers.py: tifffile plain, shaped, ImageJ, OME with strips,
tiles, compressions, byte orders and BigTIFF; zarr v2/v3 with chunking,
sharding and codecs; bioio-ome-zarr's OMEZarrWriter; pypng; pylibCZIrw with
mosaics). Each file's per-scene codes must equal the codes of the arrays
written (:func:`biocodes.synth.expected_biocode`, IMAGEWALK of TCZYX(S)).
A healthy file of a supported pixel type must be read: a refusal of one is a
finding too. A failure the generator finds becomes a fixed example below.

Bounded and reproducible: derandomized, ``EXAMPLES`` per writer (the whole
module in ~2 minutes on 2 cores). Run more locally with
``BIOCODES_GENERATIVE_EXAMPLES=500``, and fresh random examples with
``BIOCODES_GENERATIVE_RANDOM=1`` (docs/development.md).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import generative_writers as gw
import numpy as np
import pytest
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biocodes import biocode, synth
from biocodes.infra.errors import BiocodeError

#: examples per writer; CI runs the default, derandomized
EXAMPLES = int(os.environ.get("BIOCODES_GENERATIVE_EXAMPLES", "12"))
RANDOM = os.environ.get("BIOCODES_GENERATIVE_RANDOM", "") not in ("", "0")

GENERATIVE = settings(
    max_examples=EXAMPLES,
    # generous: 2 shared cores; a slow example is not the fault looked for
    deadline=timedelta(seconds=60),
    derandomize=not RANDOM,
    database=None,
    print_blob=RANDOM,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

for _name in ("tifffile", "bioio", "bioio_base", "bioio_czi", "bioio_ome_zarr"):
    logging.getLogger(_name).setLevel(logging.ERROR)


def check(case: gw.Case) -> None:
    """The file's per-scene codes are the codes of the arrays written."""
    if os.environ.get("BIOCODES_GENERATIVE_TRACE"):
        print("CASE", repr(case), flush=True)
    try:
        result = biocode(case.path)
    except BiocodeError as exc:
        pytest.fail(f"{case!r} refused ({exc.kind}): {exc}")
    got = [p["iscc_code"] for p in result["parts"]]
    want = synth.expected_biocode(case.scenes)
    assert got == want, (
        f"{case!r}: biocodes read {len(got)} scene(s) "
        f"{[(p['dims'], p['dtype']) for p in result['parts']]} with other codes "
        f"than the {len(want)} written"
    )


def check_by_cli(case: gw.Case) -> None:
    """:func:`check` through the CLI's JSON, in its own process: for inputs
    on which a native reader may abort the process instead of raising."""
    proc = run_cli("biocode", "--json", case.path)
    assert proc.returncode >= 0, (
        f"{case!r}: the process died with signal {-proc.returncode}: "
        f"{proc.stderr.strip().splitlines()[:1]}"
    )
    result = json.loads(proc.stdout.splitlines()[0])
    assert "error" not in result, f"{case!r} refused: {result['error']}"
    got = [p["iscc_code"] for p in result["parts"]]
    assert got == synth.expected_biocode(case.scenes), f"{case!r}: other codes"


def run(data: st.DataObject, strategy, by_cli: bool = False, **kw) -> None:
    with tempfile.TemporaryDirectory(prefix="biocodes-gen-") as tmp:
        case = data.draw(strategy(Path(tmp), **kw))
        (check_by_cli if by_cli else check)(case)


# -- tifffile ----------------------------------------------------------------


@GENERATIVE
@given(st.data())
def test_plain_tiff(data):
    run(data, gw.plain_tiff)


@GENERATIVE
@given(st.data())
def test_plain_tiff_rgb_pages(data):
    run(data, gw.plain_tiff, rgb_pages=True)


@GENERATIVE
@given(st.data())
def test_shaped_tiff(data):
    run(data, gw.shaped_tiff)


@GENERATIVE
@given(st.data())
def test_shaped_tiff_one_pixel_wide(data):
    run(data, gw.shaped_tiff, narrow=True)


@GENERATIVE
@given(st.data())
def test_imagej_tiff(data):
    run(data, gw.imagej_tiff)


@GENERATIVE
@given(st.data())
def test_ome_tiff(data):
    run(data, gw.ome_tiff)


# -- zarr ------------------------------------------------------------------


@GENERATIVE
@given(st.data())
def test_zarr(data):
    run(data, gw.ngff_zarr)


@GENERATIVE
@given(st.data())
def test_zarr_absent_chunks(data):
    run(data, gw.ngff_zarr, absent=True)


@GENERATIVE
@given(st.data())
def test_bioio_ome_zarr_writer(data):
    run(data, gw.bioio_ome_zarr)


@GENERATIVE
@given(st.data())
def test_bioio_ome_zarr_writer_absent_chunks(data):
    run(data, gw.bioio_ome_zarr, absent=True)


# -- PNG, CZI ----------------------------------------------------------------


@GENERATIVE
@given(st.data())
def test_pypng(data):
    run(data, gw.pypng_file)


@GENERATIVE
@given(st.data())
def test_czi(data):
    run(data, gw.czi_file)


@GENERATIVE
@given(st.data())
def test_czi_mosaic_scenes(data):
    run(data, gw.czi_file, variant="mosaics")


@GENERATIVE
@given(st.data())
def test_czi_scenes_of_other_sizes(data):
    run(data, gw.czi_file, by_cli=True, variant="sizes")


def test_truth_is_the_walk_of_the_arrays_written():
    """The helper the generator relies on: axes named in any order become
    TCZYX(S), and a missing axis is size 1."""
    a = np.arange(2 * 3 * 4 * 5).reshape(3, 2, 4, 5)  # Z C Y X
    t = gw.to_tczyx(a, "ZCYX")
    assert t.shape == (1, 2, 3, 4, 5)
    assert np.array_equal(t[0, 1, 2], a[2, 1])


# -- fixed examples: the classes the generator found ----------------------------


def test_czi_scenes_of_other_sizes_without_scene_list(tmp_path):
    """Found by test_czi_scenes_of_other_sizes (fixed): pylibCZIrw's
    defaults (no scene list in the metadata), three gray uint8 scenes of
    4x4, 8x8 and 12x5 pixels side by side. ``biocodes biocode`` died with
    SIGABRT (``free(): invalid next size``): aicspylibczi 4.0.1's
    ``read_image`` sizes its buffer from the first subblock; a worker died
    the same way. Planes are now read with pylibCZIrw. In its own process,
    so an abort fails only this test."""
    from pylibCZIrw import czi as pyczi

    path = tmp_path / "scenes.czi"
    scenes, x0 = [], 0
    with pyczi.create_czi(str(path), exist_ok=True) as doc:
        for i, (y, x) in enumerate([(4, 4), (8, 8), (12, 5)]):
            a = np.full((y, x), i + 1, np.uint8)
            doc.write(data=a, plane={"T": 0, "C": 0, "Z": 0}, scene=i, location=(x0, 0))
            scenes.append(a[None, None, None])
            x0 += x + 16
    check_by_cli(gw.Case(path, scenes, {"writer": "pylibCZIrw defaults"}))


def test_czi_rgb_mosaic_is_walked_rgb(tmp_path):
    """Found by test_czi (new class, fixed): an RGB (Bgr24) mosaic CZI goes
    to bioio-czi, which hands the samples over as stored, B, G, R; they were
    hashed as channels 0, 1, 2, so the code (exit 0) was not the code of the
    same pixels as single tiles, nor Bio-Formats'. Shrunk: one scene, two
    1x1 tiles side by side."""
    from pylibCZIrw import czi as pyczi

    a = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)  # Y=1, X=2, RGB
    path = tmp_path / "mosaic.czi"
    with pyczi.create_czi(str(path), exist_ok=True) as doc:
        for x in range(2):
            bgr = np.ascontiguousarray(a[:, x : x + 1, ::-1])
            doc.write(data=bgr, plane={"T": 0, "C": 0, "Z": 0}, location=(x, 0))
    check(gw.Case(path, [a[None, None, None]], {"writer": "pylibCZIrw mosaic"}))


def test_imagej_stack_of_one_pixel_wide_planes_is_refused_by_name(tmp_path):
    """Found by test_imagej_tiff, a writer quirk, not a reader fault:
    tifffile (2026.3.3) with ``imagej=True`` writes a Z stack of planes one
    pixel wide as one page of Z x Y pixels whose description still says
    ``images=2``. The file disagrees with itself, so it is refused with a
    named reason (never an internal error, never a code); the generator
    draws ImageJ planes at least two pixels wide."""
    import tifffile

    path = tmp_path / "narrow.tif"
    a = np.array([[[1]], [[2]]], np.uint8)  # Z=2, Y=1, X=1
    tifffile.imwrite(path, a, imagej=True, metadata={"axes": "ZYX"})
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1 and tif.imagej_metadata["images"] == 2
    with pytest.raises(BiocodeError) as err:
        biocode(path)
    assert err.value.kind == "unreadable", err.value


def test_shaped_tiff_of_one_pixel_wide_planes(tmp_path):
    """Found by test_shaped_tiff (shrunk, fixed): ``tifffile.imwrite`` of a
    uint8 (2, 2, 1, 2, 1) array, its default shape description
    ``{"shape": [2, 2, 1, 2, 1]}``. tifffile stores 4 pages of 1x2 pixels
    and names the series QQYXQ; TiffSource refused it and the fallback
    (format ``tifffile``) gave dims T=2 C=2 Z=1 Y=1 X=2 and walked page 0,
    2, 1, 3 instead of the stored order (README: unknown axes keep the
    stored order), exit 0. Now TiffSource drops the unnamed unit axis and
    walks the 4 pages as T, planes as stored (1x2, as tifffile names them
    and Bio-Formats reads them): the bytes, and so the code, of the array."""
    import tifffile

    a = np.arange(1, 9, dtype=np.uint8).reshape(2, 2, 1, 2, 1)
    path = tmp_path / "narrow.tif"
    tifffile.imwrite(path, a, photometric="minisblack")
    check(gw.Case(path, [a.reshape(-1, 1, 1, 2, 1)], {"writer": "tifffile shaped"}))
    result = biocode(path)
    assert result["format"] == "tiff"
    assert result["parts"][0]["dims"] == {"T": 4, "C": 1, "Z": 1, "Y": 1, "X": 2}


def test_shaped_tiff_whose_shape_tifffile_cannot_list(tmp_path):
    """Found by test_shaped_tiff_one_pixel_wide (fixed): ``tifffile.imwrite``
    of a uint8 (1, 1, 1, 1, 1) array writes one 1x1 page under the shape
    description ``[1, 1, 1, 1, 1]``, from which tifffile's own series
    listing raises IndexError; the healthy file was refused ("not a
    readable TIFF"). A shape tifffile cannot map onto the pages is dropped
    and the page read as stored, as Bio-Formats reads it."""
    import tifffile

    a = np.full((1, 1, 1, 1, 1), 7, np.uint8)
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, a, photometric="minisblack")
    with tifffile.TiffFile(path) as tif, pytest.raises(IndexError):
        tif.series  # noqa: B018 - the writer's own reader fails on it
    check(gw.Case(path, [a.reshape(1, 1, 1, 1, 1)], {"writer": "tifffile shaped"}))
