"""Pixels for people: 8-bit rendering rules, scene previews and PNG files.

The rules are the same for views, their codes and thumbnails:

- intensities are stretched between the 0.5 and 99.5 percentiles of the
  finite values, per channel;
- NaN and -inf become 0, +inf becomes 255;
- a flat plane (both percentiles equal) becomes black.

A scene preview (``biocodes scenes -o``) reads one plane per shown channel (the
middle Z, the first T), so it never walks the scene; views are what the full
pass shows (:mod:`biocodes.views.build`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from biocodes.sources import PlaneSource, SceneInfo

MAX_SIZE = 256
PERCENTILES = (0.5, 99.5)


def stretch_limits(values: np.ndarray) -> tuple[float, float] | None:
    """The (low, high) stretch percentiles of the finite values; None if flat."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, PERCENTILES)
    return (float(lo), float(hi)) if hi > lo else None


def to_uint8(
    plane: np.ndarray, limits: tuple[float, float] | str | None = "auto"
) -> np.ndarray:
    """Map any numeric plane to uint8 between ``limits`` (default: its percentiles)."""
    values = np.asarray(plane, dtype=np.float64)
    if isinstance(limits, str):
        limits = stretch_limits(values)
    if limits is None:
        return np.where(values == np.inf, 255, 0).astype(np.uint8)
    lo, hi = limits
    scaled = (values - lo) * (255.0 / (hi - lo))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def composite(planes: list[np.ndarray], rgb: bool, rgb8: bool = False) -> np.ndarray:
    """Up to 3 channels as one RGB uint8 image.

    An RGB source is shown as stored: no stretch for uint8, one stretch for all
    three samples otherwise (keeps the colour balance). Other channels are each
    stretched; two channels are shown magenta and green, three as R, G, B.
    """
    if rgb:
        stack = np.dstack(planes)
        return to_uint8(stack, (0.0, 255.0) if rgb8 else stretch_limits(stack))
    gray = [to_uint8(p) for p in planes]
    if len(gray) == 2:
        return np.dstack([gray[0], gray[1], gray[0]])
    return np.dstack(gray)


def save_png(image: np.ndarray, path: str | os.PathLike, max_size: int) -> Path:
    """Write a gray or RGB uint8 image as PNG, shrunk to ``max_size``; atomic."""
    from PIL import Image

    from biocodes.infra.atomic import atomic_path

    pil = Image.fromarray(image)
    pil.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
    return Path(path)


def scene_preview(source: PlaneSource, scene: SceneInfo) -> np.ndarray:
    """Gray (Y, X) or RGB (Y, X, 3) uint8 preview of one scene's middle plane."""
    z = scene.size_z // 2
    channels = [0, 1, 2] if scene.samples == 3 else [0]
    planes = [source.read_plane(scene, z, c, 0) for c in channels]
    if len(planes) == 1:
        return to_uint8(planes[0])
    return composite(planes, rgb=True, rgb8=scene.dtype == np.uint8)


def output_names(paths: Sequence[str]) -> dict[str, str]:
    """A distinct output name per input path, for PNGs written side by side:
    the file name, or, where two inputs share it, as many parent folders as
    tell them apart (``a/x.tif``, ``b/x.tif`` -> ``a_x.tif``, ``b_x.tif``), so
    no input's PNG overwrites another's."""
    parts = {
        p: [q for q in p.rstrip("/").split("/") if q not in ("", ".")] for p in paths
    }
    depth = dict.fromkeys(parts, 1)
    while True:
        names = {p: "_".join(parts[p][-depth[p] :]) or p for p in parts}
        seen: dict[str, list[str]] = {}
        for p, name in names.items():
            seen.setdefault(name, []).append(p)
        clash = [p for group in seen.values() if len(group) > 1 for p in group]
        grow = [p for p in clash if depth[p] < len(parts[p])]
        if not grow:
            break
        for p in grow:
            depth[p] += 1
    for group in seen.values():  # names that no folder tells apart (a/b_c, a_b/c)
        for n, p in enumerate(group[1:], start=2):
            names[p] = f"{names[p]}~{n}"
    return names


def write_previews(
    source: PlaneSource,
    out_dir: str | os.PathLike,
    max_size: int = MAX_SIZE,
    stem: str | None = None,
) -> list[Path]:
    """One PNG per scene, named after the image (or ``stem``) and the scene index."""
    stem = stem or Path(source.path.rstrip("/")).name
    return [
        save_png(
            scene_preview(source, scene),
            Path(out_dir) / f"{stem}.scene{scene.index}.png",
            max_size,
        )
        for scene in source.scenes
    ]


def write_thumbnail(
    source: PlaneSource,
    out_dir: str | os.PathLike,
    max_size: int = MAX_SIZE,
    stem: str | None = None,
) -> Path:
    """One representative PNG for a whole image (``biocodes thumb``): the
    preview of its largest scene (the first of equals), as ``<stem>.png``."""
    if not source.scenes:
        from biocodes.infra.errors import EmptyImageError

        raise EmptyImageError(source.path, "no scenes to show")
    scene = max(source.scenes, key=lambda s: (s.size_y * s.size_x, -s.index))
    stem = stem or Path(source.path.rstrip("/")).name
    return save_png(
        scene_preview(source, scene), Path(out_dir) / f"{stem}.png", max_size
    )
