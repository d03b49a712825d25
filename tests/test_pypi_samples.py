"""Real files that PyPI packages carry, each with its verified code.

These run in CI: :mod:`samples` fetches the sdists with pip (the index every
machine that installs the lock reaches) and checks every file's sha256; a
test skips only when pip cannot connect. scikit-image's data files come
with the lock, pinned the same way. Each expected code was verified by a
second witness, named in :data:`WITNESS`, and the witnesses run here too:
Bio-Formats 7.3.1 offline (in a subprocess, the CLI, as in
test_bioformats.py) for the TIFF, PNG and DV files, and for MRC, which
biocodes reads with Bio-Formats, the array read by hand from the MRC header
with numpy.

The four ImageJ 1.51a TIFFs failed with "internal error AttributeError:
'int' object has no attribute 'name'" (the codec-provenance code), and the
DigitalMicrograph stack and scikit-image's multi-page TIFFs were walked
pages as Z (or RGB pages as C=6) where Bio-Formats reads the pages as T (an
unnamed page axis); both are fixed on the TIFF branch of issue 24.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import samples
from test_real_samples import cli

from biocodes import synth

#: per file, per scene: its sizes TxCxZxYxX, dtype, per-scene ISCC-SUM
EXPECTED = {
    "olympus_SIS.tif": [
        (
            "1x3x1x101x112",
            "uint8",
            "ISCC:K4AKZLGQLZGRQ24WRFZV2LHNICPZM3ZDAEXA2G3HLC7PP5XSIBWAALY",
        ),
        (
            "1x1x1x101x112",
            "uint16",
            "ISCC:K4AKEUMGQD6GW2OKQTGCSYP4PN6ZV6K2XDEOSTY5BMBVEIVKVGF5F4Q",
        ),
    ],
    "optical_Zeiss_AxioVision_BW.tif": [
        (
            "1x1x1x10x13",
            "uint8",
            "ISCC:K4AN4TFZNYHNI6FURUXYINY7RKIP65BCCN2YMQQ42XPMQIWLQQUOJ3Y",
        ),
    ],
    "optical_Zeiss_AxioVision_RGB.tif": [
        (
            "1x3x1x10x13",
            "uint8",
            "ISCC:K4AGA6RPPVROVJEDTFYE3YJNODTYAQ2FS3DUDHEUPLKPVS2FSKBH2SQ",
        ),
    ],
    "test_loading_image_saved_with_DM.tif": [
        (
            "1x1x1x68x68",
            "int32",
            "ISCC:K4ABNH27KQSMKXZBDY32555ZOUXPOC2RTPU7FPUTDWDYY7ASBXCPCXQ",
        ),
    ],
    "test_loading_image_saved_with_DM_stack.tif": [
        (
            "2x1x1x68x68",
            "float32",
            "ISCC:K4AG6P7EI3W3TY6QKL5GJ442XVTEGZEYGU2A2LTPWPQDYSTDBQOXNNQ",
        ),
    ],
    "test_loading_image_saved_with_imageJ.tif": [
        (
            "1x1x1x68x68",
            "float32",
            "ISCC:K4AG6P7GI32Z3YWYKL4WN44STFSUXQU4TIASOU6TFH4JEWB7FCRQVCA",
        ),
    ],
    "test_loading_image_saved_with_imageJ_no_scale.tif": [
        (
            "1x1x1x68x68",
            "float32",
            "ISCC:K4AG6P7GI32Z3YWYKL4WN44STFSUXQU4TIASOU6TFH4JEWB7FCRQVCA",
        ),
    ],
    "test_loading_image_saved_with_imageJ_stack.tif": [
        (
            "1x1x2x68x68",
            "float32",
            "ISCC:K4AG6P7EI3W3TY6QKL5GJ442XVTEGZEYGU2A2LTPWPQDYSTDBQOXNNQ",
        ),
    ],
    "test_loading_image_saved_with_imageJ_stack_no_scale.tif": [
        (
            "1x1x2x68x68",
            "float32",
            "ISCC:K4AG6P7EI3W3TY6QKL5GJ442XVTEGZEYGU2A2LTPWPQDYSTDBQOXNNQ",
        ),
    ],
    "EMD-3001.map": [
        (
            "1x1x25x43x73",
            "float32",
            "ISCC:K4AMVGLZNKTE36GXCFPLXJABYRHP5O7FBT3ZLTJVLXVFR7XGEHBOFXQ",
        ),
    ],
    "EMD-3197.map": [
        (
            "1x1x20x20x20",
            "float32",
            "ISCC:K4ANIB27EDKCJNMFN5NNGUNYVAQ5MZ4RWE7NSSLFM5QMX43A4RK5EDA",
        ),
    ],
    "epu2.9_example.mrc": [
        (
            "1x1x1x4096x4096",
            "uint16",
            "ISCC:K4ANW3NFQZ73MWO6IICXWTLUCSBTTLAF57RCKD3HKR3MZ65IWCRBGPY",
        ),
    ],
    "fei-extended.mrc": [
        (
            "1x1x1x3838x3710",
            "uint16",
            "ISCC:K4AKFWGPHKWNVIQ5NKQAEJW5BWS6JQ5W2I7OANGDBQYPVRVYGO2Y6GA",
        ),
    ],
    "toxo.dv": [
        (
            "1x2x17x128x128",
            "uint16",
            "ISCC:K4ABDCGIFDWZSV5DDDQDQOELFSI56AVNVJPGLGSGPZN26PUT4UQQCMQ",
        ),
    ],
    "ihc.png": [
        (
            "1x3x1x512x512",
            "uint8",
            "ISCC:K4ABBYU7YZPNC6YGA2FYJXA5P3J6JIBAYN4KU7R7WZL2CJYWTZCXURQ",
        ),
    ],
    "cell.png": [
        (
            "1x1x1x660x550",
            "uint8",
            "ISCC:K4AL743VN2JZJPXEBFKJCQMLPVRD32LYSOUVADVFUIROQL2RV3AXXTI",
        ),
    ],
    "multipage.tif": [
        (
            "2x1x1x15x10",
            "uint8",
            "ISCC:K4ANTQMLQUNWNQPTCYZN4FYSLFYAU7TWPGIKVIBTILH7622PPLL3H7Q",
        ),
    ],
    "multipage_rgb.tif": [
        (
            "2x3x1x10x10",
            "float64",
            "ISCC:K4ACLPYLVFGSKJMQ5AN6QY7BFDL43MID6HW5HEBWIUQOVQ7TKBJZRXI",
        ),
    ],
    "microaneurysms.png": [
        (
            "1x1x1x102x102",
            "uint8",
            "ISCC:K4AGSYYJIP4MLGIDN5K7DS6KRJ4GJW47R6O7X3O4FHGC3ZIYY4OTNRA",
        ),
    ],
}
BIOFORMATS = "Bio-Formats 7.3.1 offline, same codes and dims"
NUMPY_MRC = (
    "numpy from the MRC header (mode, nx, ny, nz, extended header), rows top-down"
)
#: the second witness of each expected code
WITNESS = {
    name: NUMPY_MRC if name.endswith((".map", ".mrc")) else BIOFORMATS
    for name in EXPECTED
}
#: MRC modes the files use, as numpy dtypes
MRC_DTYPES = {0: "u1", 1: "i2", 2: "f4", 6: "u2"}


@pytest.fixture(scope="module")
def pypi_files() -> dict[str, Path]:
    files = samples.installed_files()
    for sample in (samples.DV_TOXO, samples.HYPERSPY_TIFF, samples.MRCFILE_MRC):
        for member, path in samples.sdist_files_or_skip(sample).items():
            files[member.rsplit("/", 1)[-1]] = path
    assert set(files) == set(EXPECTED)
    return files


def parts(result: dict) -> list[tuple]:
    assert "error" not in result, result.get("error")
    return [
        ("x".join(str(p["dims"][k]) for k in "TCZYX"), p["dtype"], p["iscc_code"])
        for p in result["parts"]
    ]


def test_real_pypi_samples_give_their_verified_codes(pypi_files):
    found, proc = cli(*pypi_files.values())
    assert set(found) == set(EXPECTED), proc.stderr[-2000:]
    for name, want in EXPECTED.items():
        assert parts(found[name]) == want, name
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_bioformats_witness_gives_the_same_codes(pypi_files):
    witnessed = [p for n, p in pypi_files.items() if WITNESS[n] == BIOFORMATS]
    found, proc = cli(*witnessed, reader="bioformats")
    for path in witnessed:
        assert path.name in found, proc.stderr[-2000:]
        assert parts(found[path.name]) == EXPECTED[path.name], path.name


def mrc_array(path: Path) -> np.ndarray:
    """An MRC file's stack as its header declares it, rows top-down (MRC
    puts the origin at the lower left; Bio-Formats turns it, as for DV)."""
    data = path.read_bytes()
    order = ">" if data[212] == 0x11 else "<"
    nx, ny, nz, mode = struct.unpack_from(order + "4i", data)
    (extended,) = struct.unpack_from(order + "i", data, 92)
    dtype = np.dtype(order + MRC_DTYPES[mode])
    stack = np.frombuffer(data, dtype, nx * ny * nz, 1024 + extended)
    return stack.reshape(nz, ny, nx)[:, ::-1]


def test_mrc_witness_gives_the_same_codes(pypi_files):
    for name, path in pypi_files.items():
        if WITNESS[name] != NUMPY_MRC:
            continue
        truth = synth.expected_biocode(mrc_array(path)[None, None])
        assert truth == [code for *_, code in EXPECTED[name]], name
