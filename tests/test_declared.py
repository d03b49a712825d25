"""A foreign reader's pixel type is checked against the file's own header.

Bio-Formats 7.3.1 declares MRC mode 12 (float16) as int8, mode 4 (complex
float32) as float64 and mode 3 (complex int16) as uint32: without the check
each gave a code of misread bytes, exit 0. The MRC files are written by hand
(1024-byte header, numpy data), in both byte orders; Bio-Formats runs in a
subprocess (the CLI), as in test_bioformats.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_bioformats import bf_cli

from biocodes import synth
from biocodes.infra.errors import UnreadableError
from biocodes.sources import declared

#: modes IMAGEWALK defines, with the dtype numpy writes them as
READ = {0: "int8", 1: "int16", 2: "float32", 6: "uint16"}
#: modes refused, with the dtype the bytes are written from
REFUSED = {12: "float16", 4: "complex64", 3: "int16"}


def stack(mode: int, dtype: str, seed: int) -> np.ndarray:
    shape = (3, 20, 24)
    if mode == 3:  # complex int16: (real, imaginary) pairs
        return synth.random_scene((*shape, 2), "int16", seed=seed)
    if dtype == "complex64":
        real = synth.random_scene((*shape, 2), "float32", seed=seed)
        return real.view("complex64")[..., 0]
    return synth.random_scene(shape, dtype, seed=seed)


@pytest.fixture(scope="module")
def mrc_files(tmp_path_factory) -> dict[str, tuple[int, np.ndarray]]:
    out = tmp_path_factory.mktemp("mrc")
    files = {}
    for i, (mode, dtype) in enumerate({**READ, **REFUSED}.items()):
        for big in (False, True):
            name = f"mode{mode}-{'big' if big else 'little'}.mrc"
            data = stack(mode, dtype, seed=i)
            synth.write_mrc(out / name, data, mode, big_endian=big)
            files[name] = (mode, out / name, data)
    return files


def test_mrc_pixels_are_read_as_the_header_declares(mrc_files):
    """Modes 0, 1, 2 and 6 give the code of the arrays written, in either
    byte order; float16 and complex are `unsupported`, naming the mode."""
    found, proc = bf_cli(*(p for _, p, _ in mrc_files.values()), reader="auto")
    assert len(found) == len(mrc_files), proc.stderr[-2000:]
    for name, (mode, _, data) in mrc_files.items():
        result = found[name]
        if mode in READ:
            assert result["format"] == "bioformats", (name, result)
            # MRC puts the origin at the lower left: rows top-down, as DV
            truth = synth.expected_biocode(data[None, None, :, ::-1])
            assert [p["iscc_code"] for p in result["parts"]] == truth, name
        else:
            assert result["error"]["type"] == "unsupported", (name, result)
            assert f"MRC mode {mode}" in result["error"]["message"], name


def test_a_reader_declaring_another_pixel_type_is_refused(tmp_path):
    """The check itself, for any reader: a declaration that disagrees with
    the header (type, plane size or plane count) is an error naming both."""
    path = synth.write_mrc(tmp_path / "a.mrc", stack(1, "int16", 0), 1)
    found = declared.declared(str(path))
    assert found.dtypes == {"int16"} and found.planes == 3
    sizes = {"Z": 3, "Y": 20, "X": 24}
    declared.check(str(path), found, 0, "bioformats", np.dtype("int16"), sizes)
    for dtype, wrong, says in [
        ("uint32", sizes, "pixel type uint32"),
        ("int16", {**sizes, "X": 12}, "planes of 12x20"),
        ("int16", {**sizes, "Z": 6}, "6 planes"),
    ]:
        with pytest.raises(UnreadableError, match=f"declares {says}.*MRC mode 1"):
            declared.check(str(path), found, 0, "bioformats", np.dtype(dtype), wrong)


def test_a_header_that_is_not_mrc_declares_nothing(tmp_path):
    """A .map that is another format's (JEOL's EDS maps go by .map too)."""
    path = tmp_path / "view.map"
    path.write_bytes(b"\x01\x02" * 2048)
    assert declared.declared(str(path)) is None
    assert declared.declared(str(tmp_path / "none.tif")) is None
