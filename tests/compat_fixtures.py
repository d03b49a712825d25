"""The fixtures we compare against iscc-bio 0.2.0, generated from fixed seeds.

Shared by scripts/record_iscc_bio.py (which records iscc-bio's answers) and
tests/test_compat_iscc_bio.py (which checks ours against them). Per-scene codes
depend only on pixels, so regenerating the files reproduces them exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biocodes import synth

#: where iscc-bio 0.2.0 is right: our parts must equal its parts
AGREE = [
    "gray.ome.tif",
    "multi.ome.tif",
    "stack.tif",
    "imagej.tif",
    "gray.czi",
    "gray8.png",
    "gray16.png",
    "b2r.zarr",
    "float.ome.tif",
    "int8.ome.tif",
]
#: where it is wrong, and why (documented in docs/reading.md)
DIFFER = {
    "rgb.png": "drops RGB samples 1 and 2",
    "rgb.ome.tif": "drops RGB samples 1 and 2",
    "ngff.ome.zarr": "gives no parts for a standard OME-Zarr (NGFF 0.5) store",
    "truncated.ome.tif": "hashes zeros for the missing bytes",
    "multi.czi": "wrong pixels for scene 1 of a CZI whose scenes differ in shape",
}


def build(out: Path) -> dict[str, Path]:
    """Write every compatibility fixture under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    a = synth.random_scene((2, 2, 3, 40, 48), "uint16", seed=11)
    b = synth.random_scene((1, 1, 2, 24, 30), "uint16", seed=12)
    u8 = synth.random_scene((1, 2, 2, 33, 35), "uint8", seed=13)
    rgb = synth.random_scene((30, 40, 3), "uint8", seed=14)
    files = {
        "gray.ome.tif": synth.write_ome_tiff(out / "gray.ome.tif", a),
        "multi.ome.tif": synth.write_ome_tiff(out / "multi.ome.tif", [a, b]),
        "float.ome.tif": synth.write_ome_tiff(
            out / "float.ome.tif", synth.random_scene((1, 1, 2, 20, 20), "float32", 15)
        ),
        "int8.ome.tif": synth.write_ome_tiff(
            out / "int8.ome.tif", synth.random_scene((1, 2, 1, 20, 20), "int8", 16)
        ),
        "stack.tif": synth.write_tiff(out / "stack.tif", a[0, 0]),
        "imagej.tif": synth.write_imagej_tiff(out / "imagej.tif", a),
        "gray.czi": synth.write_czi(out / "gray.czi", u8),
        "multi.czi": synth.write_czi(out / "multi.czi", [a, b]),
        "gray8.png": synth.write_png(out / "gray8.png", u8[0, 0, 0]),
        "gray16.png": synth.write_png(out / "gray16.png", a[0, 0, 0]),
        "b2r.zarr": synth.write_bioformats2raw(out / "b2r.zarr", [a, b]),
        "rgb.png": synth.write_png(out / "rgb.png", rgb),
        "rgb.ome.tif": synth.write_ome_tiff(out / "rgb.ome.tif", rgb[None, None, None]),
        "ngff.ome.zarr": synth.write_ome_zarr(out / "ngff.ome.zarr", a, zarr_format=3),
    }
    whole = synth.write_ome_tiff(out / "truncated.ome.tif", a).read_bytes()
    files["truncated.ome.tif"] = out / "truncated.ome.tif"
    files["truncated.ome.tif"].write_bytes(whole[: len(whole) * 2 // 3])
    return files


def arrays() -> dict[str, list[np.ndarray]]:
    """The ground-truth pixels of the fixtures where iscc-bio is wrong."""
    a = synth.random_scene((2, 2, 3, 40, 48), "uint16", seed=11)
    rgb = synth.random_scene((30, 40, 3), "uint8", seed=14)
    b = synth.random_scene((1, 1, 2, 24, 30), "uint16", seed=12)
    return {
        "rgb.png": [rgb[None, None, None]],
        "rgb.ome.tif": [rgb[None, None, None]],
        "ngff.ome.zarr": [a],
        "multi.czi": [a, b],
    }
