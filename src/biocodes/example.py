"""The built-in example repository: a few images in several formats.

It holds the same pixels in two formats (so duplicates show up), an 8-bit
rescaled copy (similar, not identical), a multi-scene
OME-TIFF, a multi-scene CZI whose scenes differ in shape, an RGB PNG, a
bioformats2raw tree, and one truncated file that must end up as an error.
"""

from __future__ import annotations

import os
from pathlib import Path

from biocodes import synth


def make_example(out_dir: str | os.PathLike) -> list[Path]:
    """Write the example images under ``out_dir`` and return their paths."""
    out = Path(out_dir)
    for sub in ("tiff", "zarr", "czi", "png", "corrupt"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cells = synth.structured_scene((1, 2, 4, 96, 128), "uint16", seed=1)
    other = synth.structured_scene((3, 1, 1, 64, 80), "uint16", seed=2)
    rgb = synth.structured_scene((1, 3, 1, 48, 64), "uint8", seed=3)[0, :, 0]
    paths = [
        synth.write_ome_tiff(out / "tiff" / "cells.ome.tif", cells),
        synth.write_ome_tiff(out / "tiff" / "two-scenes.ome.tif", [cells, other]),
        # 8-bit rescaled copy of one channel: not a duplicate, but similar
        synth.write_tiff(out / "tiff" / "stack.tif", (cells[0, 0] // 257).astype("u1")),
        synth.write_ome_zarr(out / "zarr" / "cells.ome.zarr", cells, zarr_format=3),
        synth.write_bioformats2raw(out / "zarr" / "series.zarr", [other, cells]),
        synth.write_czi(out / "czi" / "two-shapes.czi", [cells, other]),
        synth.write_png(out / "png" / "rgb.png", rgb.transpose(1, 2, 0)),
    ]
    good = paths[0].read_bytes()
    corrupt = out / "corrupt" / "truncated.ome.tif"
    corrupt.write_bytes(good[: len(good) // 2])
    paths.append(corrupt)
    return paths
