"""Real files of formats whose reader we chose from evidence (docs/reading.md,
"Which reader reads what"): each is read the way biocodes reads it by default and
checked against an independent reader of the same bytes.

LIF: Bio-Formats is canonical. Its codes must equal those of liffile's arrays
(cgohlke's reader, which parses each image's dimension descriptions) laid out
as Bio-Formats lays them out: an XZ frame is a plane (its Z lines are rows, a
scan's Y is walked as Z), and wavelength axes are folded into T, inner to
time. VSI: Bio-Formats too; its macro-image scene equals the VSI's own TIFF
bytes read natively. CZI and DV: the native readers are canonical, and agree
with Bio-Formats on every real file we have.

Bio-Formats runs in a subprocess (the CLI), as in test_bioformats.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import samples

from biocodes import synth
from biocodes.core.fingerprint import biocode, fingerprint_scene
from biocodes.sources import bioformats
from biocodes.sources.array import ArraySource
from biocodes.sources.bioio import choose_readers

#: what Bio-Formats (and so OMERO, bfconvert) makes of each real LIF scene
LIF_DIMS = {
    "LeicaLASX_wavelength-sweep_example.lif": [
        ("x_y_lambdaEmi", {"T": 20, "C": 1, "Z": 1, "Y": 64, "X": 64}),
        ("x_y_lambdaExc", {"T": 15, "C": 1, "Z": 1, "Y": 64, "X": 64}),
        ("x_y_z_t_lambdaEmi", {"T": 20, "C": 1, "Z": 11, "Y": 64, "X": 64}),
    ],
    "testdata_2channel_xz.lif": [
        ("xzt", {"T": 20, "C": 2, "Z": 1, "Y": 128, "X": 128}),
        ("xzy", {"T": 1, "C": 2, "Z": 23, "Y": 128, "X": 128}),
        ("xz", {"T": 1, "C": 2, "Z": 1, "Y": 512, "X": 512}),
    ],
}
#: liffile's names for the axes that Bio-Formats folds into T
WAVELENGTH = ("λ", "Λ")


def cli(
    *paths: Path, env: dict | None = None, reader: str = "auto"
) -> tuple[dict, subprocess.CompletedProcess]:
    """``biocodes biocode --json`` in a subprocess: {file name: result}."""
    cmd = [sys.executable, "-m", "biocodes.cli", "biocode", "--json"]
    proc = subprocess.run(
        [*cmd, "--reader", reader, "--", *paths],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    found = {
        Path(r["path"]).name: r for r in map(json.loads, proc.stdout.split("\n")[:-1])
    }
    return found, proc


@pytest.fixture(scope="module")
def lif_files() -> list[Path]:
    return [samples.sample_or_skip(s) for s in (samples.LIF_WAVELENGTH, samples.LIF_XZ)]


@pytest.fixture(scope="module")
def lif_read(lif_files) -> dict:
    found, proc = cli(*lif_files)
    assert set(found) == set(LIF_DIMS), proc.stderr[-3000:]
    return found


def as_bioformats(dims: tuple[str, ...], data: np.ndarray) -> np.ndarray:
    """liffile's array (stored axis order) as Bio-Formats' TCZYX: the frame
    is the last two stored axes; T gathers time and wavelengths (outer to
    inner as stored), Z gathers Z, or Y when the frame is an XZ scan."""
    rest = dims[:-2]
    groups = [
        [i for i, d in enumerate(rest) if d == "T" or d in WAVELENGTH],
        [i for i, d in enumerate(rest) if d == "C"],
        [i for i, d in enumerate(rest) if d in ("Z", "Y")],
    ]
    assert sum(map(len, groups)) == len(rest), dims
    order = [i for g in groups for i in g] + [len(rest), len(rest) + 1]
    sizes = [int(np.prod([data.shape[i] for i in g])) for g in groups]
    return data.transpose(order).reshape(*sizes, *data.shape[-2:])


def test_lif_and_vsi_go_to_bioformats_even_with_a_native_plugin():
    for name in ("a.lif", "A.LIF", "a.vsi"):
        (reader,) = choose_readers(name)
        assert reader.__module__.startswith("bioio_bioformats"), name


def test_lif_codes_are_bioformats_and_equal_an_independent_reader(lif_files, lif_read):
    import liffile

    for path in lif_files:
        result = lif_read[path.name]
        assert result["format"] == "bioformats"
        got = [(p["scene_name"], p["dims"]) for p in result["parts"]]
        assert got == LIF_DIMS[path.name]
        with liffile.LifFile(path) as lif:
            arrays = [as_bioformats(im.dims, im.asarray()) for im in lif.images]
        witness = ArraySource(arrays)
        for part, scene in zip(result["parts"], witness.scenes):
            assert part["iscc_code"] == fingerprint_scene(witness, scene)["iscc_code"]


def test_bioio_lif_misreads_real_lif_files(lif_files):
    """Why LIF is not read natively: bioio-lif 2.0.1 reports a 20-wavelength
    image as one plane (no wavelength axis) and cannot read its pixels, nor
    those of an XZ scan. If a new version reads them, revisit the choice."""
    import bioio_lif

    sweep, xz = (bioio_lif.Reader(p) for p in lif_files)
    sweep.set_scene(0)
    assert dict(zip(sweep.dims.order, sweep.dims.shape))["T"] == 1
    assert "λ" not in sweep.dims.order
    for reader in (sweep, xz):
        reader.set_scene(0)
        with pytest.raises(ValueError):
            reader.get_image_dask_data().compute()


@pytest.mark.parametrize("name", ["scan.lif", "slide.vsi"])
def test_no_bioformats_means_no_code(tmp_path, name):
    """A LIF, or a VSI whose bytes are a TIFF (its macro image), is refused
    in one line when Bio-Formats cannot run: never read by the plugin, never
    as the plain TIFF it also is."""
    path = tmp_path / name
    synth.write_ome_tiff(path, synth.random_scene((1, 1, 1, 16, 16), "uint8", seed=3))
    found, proc = cli(path, env={bioformats.JAR_ENV: str(tmp_path / "none.jar")})
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert name in line and "Bio-Formats" in line
    assert found[name]["error"]["type"] == "unsupported"


@pytest.fixture(scope="module")
def vsi(tmp_path_factory) -> Path:
    files = samples.sdist_files_or_skip(samples.VSI_JPEG2000)
    out = tmp_path_factory.mktemp("vsi")
    for member, path in files.items():  # the .vsi and its side folder
        dest = out / member.removeprefix(samples.VSI_RES)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return out / "vsi-ets-test-jpg2k.vsi"


def test_vsi_is_read_whole_by_bioformats(vsi, tmp_path):
    """The z-stack (in the side .ets file) and the macro image (the TIFF
    itself) are both scenes; the macro image's code equals the TIFF's read
    natively, pixel for pixel."""
    found, proc = cli(vsi)
    result = found[vsi.name]
    assert result["format"] == "bioformats", proc.stderr[-2000:]
    dims = [(p["scene_name"], p["dims"], p["dtype"]) for p in result["parts"]]
    assert dims == [
        ("001 C405, C488", {"T": 1, "C": 2, "Z": 11, "Y": 1682, "X": 1645}, "uint16"),
        ("macro image", {"T": 1, "C": 3, "Z": 1, "Y": 512, "X": 501}, "uint8"),
    ]
    tiff = tmp_path / "macro.tif"
    shutil.copyfile(vsi, tiff)
    (macro,) = biocode(tiff)["parts"]
    assert macro["iscc_code"] == result["parts"][1]["iscc_code"]


@pytest.fixture(scope="module")
def native_formats() -> list[Path]:
    """Real CZI and DV files, read natively and by Bio-Formats."""
    return [samples.sample_or_skip(s) for s in [*samples.CZI, samples.DV_TOXO]]


def test_native_readers_agree_with_bioformats_on_real_files(native_formats):
    found, proc = cli(*native_formats, env=None, reader="bioformats")
    for path in native_formats:
        native = biocode(path)
        assert native["format"] in ("czi", "dv"), path.name
        bf = found[path.name]
        assert bf["format"] == "bioformats", proc.stderr[-2000:]
        assert [(p["iscc_code"], p["dims"]) for p in bf["parts"]] == [
            (p["iscc_code"], p["dims"]) for p in native["parts"]
        ], path.name


def write_qptiff(path: Path, full: np.ndarray, seed: int = 5) -> Path:
    """A QPTIFF laid out as PerkinElmer/Akoya scanners write it (tifffile's
    QPI series): tiled full-resolution channel pages, an RGB thumbnail, the
    reduced resolutions, then RGB overview and label images, each page with
    its PerkinElmer-QPI XML."""
    import tifffile

    rng = np.random.default_rng(seed)

    def rgb(y: int, x: int) -> np.ndarray:
        return rng.integers(0, 255, (y, x, 3), dtype="uint8")

    def page(kind: str, name: str | None = None) -> dict:
        channel = f"<Name>{name}</Name>" if name else ""
        xml = (
            '<?xml version="1.0" encoding="utf-16"?>'
            "<PerkinElmer-QPI-ImageDescription><DescriptionVersion>2"
            f"</DescriptionVersion><ImageType>{kind}</ImageType>{channel}"
            "</PerkinElmer-QPI-ImageDescription>"
        )
        return {"description": xml, "software": "PerkinElmer-QPI", "metadata": None}

    names = [f"marker{i}" for i in range(len(full))]
    with tifffile.TiffWriter(path) as w:
        for name, plane in zip(names, full):
            w.write(plane, tile=(32, 32), **page("FullResolution", name))
        w.write(rgb(32, 24), photometric="rgb", **page("Thumbnail"))
        for name, plane in zip(names, full):
            w.write(plane[::2, ::2], tile=(32, 32), **page("ReducedResolution", name))
        w.write(rgb(40, 60), photometric="rgb", **page("Overview"))
        w.write(rgb(20, 30), photometric="rgb", **page("Label"))
    return path


def test_qptiff_is_read_as_the_tiff_it_is(tmp_path):
    """QPTIFF needs no plugin: tifffile's QPI series give the full
    resolution (channels as C, pyramid levels not walked) and the thumbnail,
    overview and label images as scenes, as bioio-qptiff 0.1.0 does with the
    same codes (checked by hand; the plugin is not locked, docs/reading.md)."""
    full = synth.random_scene((3, 128, 96), "uint16", seed=8)
    path = write_qptiff(tmp_path / "slide.qptiff", full)
    result = biocode(path)
    assert result["format"] == "tiff"
    got = [(p["scene_name"], p["dims"]["C"], p["dims"]["Y"]) for p in result["parts"]]
    assert got == [
        ("Baseline", 3, 128),
        ("Thumbnail", 3, 32),
        ("Macro", 3, 40),
        ("Label", 3, 20),
    ]
    same = synth.write_ome_tiff(tmp_path / "same.ome.tif", full[None, :, None])
    (expected,) = biocode(same)["parts"]
    assert result["parts"][0]["iscc_code"] == expected["iscc_code"]


def fake_reader(dims: str, shape: tuple[int, ...], stitched: tuple | None = None):
    """A bioio reader class that reports ``dims`` of ``shape`` (and stitches
    its M tiles into ``stitched`` TCZYX, if given), as a plugin might."""
    import dask.array as da
    import xarray as xr
    from bioio_base.reader import Reader

    class FakeReader(Reader):
        def __init__(self, image, **kwargs) -> None:
            self._path = str(image)

        @staticmethod
        def _is_supported_image(fs, path, **kwargs) -> bool:
            return True

        @property
        def scenes(self) -> tuple[str, ...]:
            return ("Image:0",)

        def _read_delayed(self) -> xr.DataArray:
            return xr.DataArray(da.zeros(shape, dtype="uint8"), dims=list(dims))

        def _read_immediate(self) -> xr.DataArray:
            return self._read_delayed().compute()

        def _get_stitched_dask_mosaic(self) -> xr.DataArray:
            if stitched is None:
                raise NotImplementedError
            return xr.DataArray(da.zeros(stitched, dtype="uint8"), dims=list("TCZYX"))

    return FakeReader


@pytest.mark.parametrize(
    "dims, shape, stitched, refused",
    [
        ("LCZYX", (20, 1, 1, 8, 8), None, "'L' of size 20"),  # a wavelength sweep
        ("TCZYXV", (1, 1, 1, 8, 8, 3), None, "'V' of size 3"),  # three views
        ("MTCZYX", (4, 1, 1, 1, 8, 8), None, "'M' of size 4"),  # tiles, unstitched
        ("MTCZYX", (4, 1, 1, 1, 8, 8), (1, 1, 1, 16, 16), None),  # stitched
        ("TCZYXL", (2, 1, 1, 8, 8, 1), None, None),  # a single wavelength
    ],
)
def test_an_axis_imagewalk_does_not_name_is_refused_not_dropped(
    tmp_path, monkeypatch, dims, shape, stitched, refused
):
    """bioio's BioImage folds every reader into TCZYX(S) and keeps index 0 of
    any other axis: such a scene is `unsupported`, never hashed as its first
    wavelength or view. Mosaic tiles that bioio stitched are not dropped."""
    from biocodes.infra.errors import UnsupportedError
    from biocodes.sources import bioio as bioio_source

    reader = fake_reader(dims, shape, stitched)
    monkeypatch.setattr(bioio_source, "choose_readers", lambda *a: [reader])
    path = tmp_path / "image.raw"
    path.write_bytes(b"\0" * 64)
    if refused:
        with pytest.raises(UnsupportedError, match=f"dimension {refused}"):
            bioio_source.BioioSource(str(path))
    else:
        (scene,) = bioio_source.BioioSource(str(path)).scenes
        assert scene.planes * scene.plane_nbytes == int(np.prod(stitched or shape))
