"""Small PNG previews of scenes, for people browsing a catalogue.

A thumbnail reads one plane per shown channel (the middle Z, the first T), so it
never walks the scene. Intensities are stretched between the 0.5 and 99.5
percentiles of finite values; NaN and inf become black; a constant plane is
mid-gray.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from biocodes.sources import PlaneSource, SceneInfo

MAX_SIZE = 256


def to_uint8(plane: np.ndarray) -> np.ndarray:
    """Percentile contrast stretch of any numeric plane to uint8."""
    values = plane.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(plane.shape, np.uint8)
    lo, hi = np.percentile(values[finite], [0.5, 99.5])
    if hi <= lo:
        return np.full(plane.shape, 128 if finite.all() else 0, np.uint8)
    scaled = (np.where(finite, values, lo) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def scene_thumbnail(
    source: PlaneSource, scene: SceneInfo, max_size: int = MAX_SIZE
) -> np.ndarray:
    """Gray (Y, X) or RGB (Y, X, 3) uint8 preview of one scene."""
    from PIL import Image

    z = scene.size_z // 2
    channels = [0, 1, 2] if scene.samples == 3 else [0]
    planes = [to_uint8(source.read_plane(scene, z, c, 0)) for c in channels]
    image = planes[0] if len(planes) == 1 else np.dstack(planes)
    pil = Image.fromarray(image)
    pil.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    return np.asarray(pil)


def write_thumbnails(
    source: PlaneSource, out_dir: str | os.PathLike, max_size: int = MAX_SIZE
) -> list[Path]:
    """One PNG per scene, named after the image and the scene index."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(source.path.rstrip("/")).name
    paths = []
    for scene in source.scenes:
        target = out / f"{stem}.scene{scene.index}.png"
        tmp = target.with_suffix(".png.tmp")
        Image.fromarray(scene_thumbnail(source, scene, max_size)).save(
            tmp, format="PNG"
        )
        os.replace(tmp, target)
        paths.append(target)
    return paths
