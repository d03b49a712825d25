"""Bad input: a one-line error naming the file and the cause, never a code."""

import json

import numpy as np
import pytest
from conftest import run_cli

from biocodes import synth
from biocodes.core.fingerprint import biocode
from biocodes.infra.errors import (
    BiocodeError,
    EmptyImageError,
    NotFoundError,
    TruncatedError,
    UnreadableError,
    UnsupportedError,
)


def truncate(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def make_cases(tmp):
    a = synth.random_scene((1, 1, 6, 64, 64), "uint16", seed=1)
    text = tmp / "notes.tif"
    text.write_text("this is not an image\n" * 20)
    empty = tmp / "empty.ome.tif"
    empty.touch()
    folder = tmp / "folder"
    folder.mkdir()
    (folder / "readme.txt").write_text("hi")
    zero = tmp / "zero.ome.zarr"
    synth.write_ome_zarr(zero, a[:, :, :1], zarr_format=3, levels=1)
    import zarr

    zarr.open_group(str(zero), mode="r+")["0"].resize((1, 1, 0, 64, 64))
    booly = tmp / "f16.ome.zarr"
    synth.write_ome_zarr(booly, a[:, :, :1].astype(np.uint8), zarr_format=2, levels=1)
    arr = zarr.open_group(str(booly), mode="r+")
    del arr["0"]
    arr.create_array("0", shape=(1, 1, 1, 64, 64), dtype="float16")
    return {
        "missing": (tmp / "nope.tif", NotFoundError),
        "folder": (folder, UnreadableError),
        "empty": (empty, EmptyImageError),
        "text": (text, UnreadableError),
        "trunc-zlib": (
            truncate(synth.write_ome_tiff(tmp / "z.ome.tif", a, compression="zlib")),
            (TruncatedError, UnreadableError),
        ),
        "trunc-raw": (
            truncate(synth.write_ome_tiff(tmp / "raw.ome.tif", a)),
            TruncatedError,
        ),
        "trunc-raw-plain": (
            truncate(synth.write_tiff(tmp / "raw.tif", a[0, 0]), 0.9),
            TruncatedError,
        ),
        "zero-size": (zero, EmptyImageError),
        "float16": (booly, UnsupportedError),
        "trunc-png": (
            truncate(synth.write_png(tmp / "p.png", a[0, 0, 0])),
            BiocodeError,
        ),
        "trunc-czi": (truncate(synth.write_czi(tmp / "c.czi", a)), BiocodeError),
    }


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return make_cases(tmp_path_factory.mktemp("bad"))


CASE_NAMES = [
    "missing",
    "folder",
    "empty",
    "text",
    "trunc-zlib",
    "trunc-raw",
    "trunc-raw-plain",
    "zero-size",
    "float16",
    "trunc-png",
    "trunc-czi",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_library_raises_a_clear_error(cases, name):
    path, kind = cases[name]
    with pytest.raises(kind) as info:
        biocode(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert len(message) < 500


def test_cli_reports_each_failure_and_keeps_going(cases, tmp_path):
    good = synth.write_ome_tiff(
        tmp_path / "good.ome.tif", synth.random_scene((1, 1, 1, 8, 8), "uint8")
    )
    paths = [good] + [cases[n][0] for n in CASE_NAMES]
    proc = run_cli("biocode", "--json", *paths)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in paths]
    assert "iscc_code" in lines[0] and "error" not in lines[0]
    for line in lines[1:]:
        assert set(line) == {"path", "error"}  # no code of any kind
        assert line["path"] in line["error"]["message"]
    errors = [e for e in proc.stderr.splitlines() if e.startswith("biocodes: ")]
    assert len(errors) == len(CASE_NAMES)


def test_cli_human_error_is_one_line(cases):
    proc = run_cli("biocode", cases["trunc-raw"][0])
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0
    assert "truncated" in proc.stderr


def test_float16_is_refused(tmp_path):
    import tifffile

    path = tmp_path / "half.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.float16))
    with pytest.raises(UnsupportedError, match="float16"):
        biocode(path)


def test_readers_refusals_are_named_reader_by_reader(tmp_path):
    """bioio's refusal text repeats the path, its own boilerplate and Python
    object addresses; the error keeps one clause per reader it tried."""
    junk = tmp_path / "junk.dv"
    junk.write_bytes(bytes(range(256)) * 12)
    with pytest.raises(UnreadableError) as info:
        biocode(junk)
    message = str(info.value)
    assert "no installed reader can open it (bioio-dv: DV file format not" in message
    assert "bioio-imageio: " in message
    assert " at 0x" not in message and "BioImage does not support" not in message
    assert message.count(str(junk)) == 1 and "\n" not in message


def test_readers_refusals_drop_bioios_absolute_path(tmp_path, monkeypatch):
    """bioio names the file by its absolute path whatever path it was given:
    a relative path's message does not carry that second name."""
    (tmp_path / "junk.dv").write_bytes(bytes(range(256)) * 12)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnreadableError) as info:
        biocode("junk.dv")
    assert str(tmp_path) not in str(info.value)
    assert "(bioio-dv: DV file format not supported" in str(info.value)
