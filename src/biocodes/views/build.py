"""Representative views of a scene, their ISCC-IMAGE codes and the scene's ISCC-MIXED.

A biocode says whether two scenes have identical pixels; views say what a
scene looks like, so that re-saved, cropped or rescaled copies are found as
similar. A :class:`ViewBuilder` is fed every plane during the same pass that
computes the ISCC-SUM (never a second read) and keeps only working-resolution
copies of the few planes it may show: one running maximum and one sharpest
plane per shown channel, the middle plane and the most informative plane.

Rules (also in docs/guide.md, "Views"):

- working resolution: planes are block-averaged by one integer factor so that
  the longest side is at most :data:`WORK_SIZE` pixels;
- only the time point ``time_point`` (default 0, clipped to the last) is shown;
- per-channel views (``mip``, ``best_focus``) cover the first ``channels``
  channels (default 3), and so does ``composite``;
- 8-bit rendering follows :mod:`biocodes.views.thumbnails` (percentiles, NaN/inf,
  flat planes);
- ISCC-IMAGE: the 8-bit view, converted to gray by PIL (ITU-R 601-2 luma for
  RGB) and resized to 32x32 with bicubic resampling, goes to iscc-core's
  ``gen_image_code_v0`` with 64 bits;
- candidates are taken one per strategy in turn; a candidate within
  ``dedupe_distance`` bits of a kept view is dropped; at most ``max_views``
  are kept;
- ISCC-MIXED: iscc-core's ``gen_mixed_code_v0`` (64 bits) over the kept view
  codes in view order. iscc-core needs two codes, so a single view is given
  twice: the mixed code then carries that view's first 56 bits.
- plane images (opt-in, ``plane_images``): every plane's ISCC-IMAGE
  (:func:`plane_code`), so a picture exported from one plane (PNG, JPEG,
  rescaled, re-contrasted) names its scene and plane.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biocodes.sources import SceneInfo
from biocodes.views.thumbnails import composite, save_png, stretch_limits, to_uint8

STRATEGIES = ("composite", "mip", "best_focus", "representative")
WORK_SIZE = 512
IMAGE_BITS = 64
MIXED_BITS = 64


@dataclass(frozen=True)
class ViewOptions:
    """What views to build and where their thumbnails go (None: none written)."""

    strategies: tuple[str, ...] = STRATEGIES
    max_views: int = 5
    dedupe_distance: int = 4
    time_point: int = 0
    channels: int = 3
    thumbnails: str | None = None
    thumbnail_size: int = 256
    #: an ISCC-IMAGE of every plane (see :func:`plane_code`)
    plane_images: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.strategies) - set(STRATEGIES)
        if unknown or not self.strategies:
            raise ValueError(
                f"unknown view strategies {sorted(unknown)}; choose from {STRATEGIES}"
            )
        if self.max_views < 1 or self.channels < 1 or self.thumbnail_size < 1:
            raise ValueError("max_views, channels and thumbnail_size must be >= 1")


@dataclass
class View:
    """One candidate view: where it comes from and its 8-bit image."""

    strategy: str
    z: int | None
    c: int | None
    t: int
    channels: list[int]
    image: np.ndarray = field(repr=False)
    iscc_image: str = ""

    def to_dict(self, index: int) -> dict:
        return {
            "view_index": index,
            "strategy": self.strategy,
            "z": self.z,
            "c": self.c,
            "t": self.t,
            "channels": self.channels,
            "iscc_image": self.iscc_image,
        }


def work_factor(size_y: int, size_x: int) -> int:
    """The block size that brings the longest side to at most WORK_SIZE."""
    return max(1, math.ceil(max(size_y, size_x) / WORK_SIZE))


def downsample(plane: np.ndarray, factor: int) -> np.ndarray:
    """Block means over factor x factor pixels (float64); ragged edges dropped.

    Summing the factor**2 strided sub-grids is about 4x faster than a reshape
    and mean, and needs no temporaries larger than the result.
    """
    if factor == 1:
        return plane.astype(np.float64)
    fy, fx = min(factor, plane.shape[0]), min(factor, plane.shape[1])
    h, w = plane.shape[0] // fy, plane.shape[1] // fx
    trimmed = plane[: h * fy, : w * fx]
    out = np.zeros((h, w), np.float64)
    for i in range(fy):
        for j in range(fx):
            out += trimmed[i::fy, j::fx]
    out /= fy * fx
    return out


def focus_score(plane: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of 2x2 block means: higher is
    sharper. The block means keep pixel noise from counting as detail."""
    p = np.nan_to_num(plane, nan=0.0, posinf=0.0, neginf=0.0)
    if min(p.shape) >= 6:
        p = downsample(p, 2)
    if min(p.shape) < 3:
        return 0.0
    lap = 4 * p[1:-1, 1:-1] - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]
    return float(lap.var())


def information_score(
    plane: np.ndarray, limits: tuple[float, float] | str = "auto"
) -> float:
    """Entropy of the 8-bit histogram times the fraction of pixels above 1/8 of
    the stretched range: textured, well-covered planes score high."""
    img = to_uint8(plane, limits)
    counts = np.bincount(img.ravel(), minlength=256).astype(np.float64)
    p = counts[counts > 0] / img.size
    entropy = float(-(p * np.log2(p)).sum())
    return entropy * float((img > 32).mean())


def image_code(image: np.ndarray) -> str:
    """ISCC-IMAGE (64 bits) of a gray or RGB uint8 image."""
    from iscc_core import gen_image_code_v0
    from PIL import Image

    gray = Image.fromarray(image).convert("L")
    small = gray.resize((32, 32), Image.Resampling.BICUBIC)
    return gen_image_code_v0(np.asarray(small).ravel().tolist(), bits=IMAGE_BITS)[
        "iscc"
    ]


#: planes are block-averaged to at most this many pixels a side before
#: their ISCC-IMAGE (it is made from 32x32 pixels)
PLANE_WORK_SIZE = 128


def plane_code(plane: np.ndarray) -> str:
    """ISCC-IMAGE (64 bits) of one 2D plane of any numeric type, as plane
    images and the pictures compared with them are made: block means to at
    most :data:`PLANE_WORK_SIZE` a side, 8 bits by percentiles
    (:func:`~biocodes.views.thumbnails.to_uint8`), resized to 32x32 by PIL
    (bicubic), then iscc-lib's ``gen_image_code_v0`` (the codes of
    iscc-core's, ~20x faster: one plane costs ~1 ms besides the means)."""
    from iscc_lib import gen_image_code_v0
    from PIL import Image

    factor = max(1, math.ceil(max(plane.shape) / PLANE_WORK_SIZE))
    gray = Image.fromarray(to_uint8(downsample(plane, factor)))
    small = gray.resize((32, 32), Image.Resampling.BICUBIC)
    return gen_image_code_v0(np.asarray(small).tobytes(), bits=IMAGE_BITS)["iscc"]


def mixed_code(codes: list[str]) -> str:
    """ISCC-MIXED of a scene's view codes; one code is used twice."""
    from iscc_core import gen_mixed_code_v0

    if len(codes) == 1:
        codes = codes * 2
    return gen_mixed_code_v0(codes, bits=MIXED_BITS)["iscc"]


def distance(a: str, b: str) -> int:
    """Hamming distance in bits between two codes of the same type and length."""
    from iscc_core import iscc_distance

    return iscc_distance(a, b)


class ViewBuilder:
    """Watches one scene's planes and proposes its views at the end.

    Memory: at most ``2 * channels + 2`` working-resolution planes (about
    2 MiB each), whatever the size of the scene.
    """

    def __init__(self, scene: SceneInfo, options: ViewOptions) -> None:
        self.scene = scene
        self.options = options
        self.t = min(options.time_point, scene.size_t - 1)
        self.factor = work_factor(scene.size_y, scene.size_x)
        self.channels = min(options.channels, scene.size_c)
        self.mip: dict[int, np.ndarray] = {}
        self.sharpest: dict[int, tuple[float, int, np.ndarray]] = {}
        self.middle: tuple[tuple, int, int, np.ndarray] | None = None
        self.informative: tuple[float, int, int, np.ndarray] | None = None
        self.plane_images: list[dict] | None = [] if options.plane_images else None

    def add(self, z: int, c: int, t: int, plane: np.ndarray) -> None:
        """See one plane (any order); planes of other time points are ignored
        by the views (plane images take every plane)."""
        if self.plane_images is not None:
            code = plane_code(plane)
            self.plane_images.append({"z": z, "c": c, "t": t, "iscc_image": code})
        if t != self.t:
            return
        work = downsample(plane, self.factor)
        if c < self.channels:
            self.mip[c] = work if c not in self.mip else np.fmax(self.mip[c], work)
            score = focus_score(work)
            if c not in self.sharpest or score > self.sharpest[c][0]:
                self.sharpest[c] = (score, z, work)
        limits = stretch_limits(work)  # one percentile pass per plane
        key = (limits is None, abs(z - self.scene.size_z // 2), c)
        if self.middle is None or key < self.middle[0]:
            self.middle = (key, z, c, work)
        if limits is not None:
            info = information_score(work, limits)
            if self.informative is None or info > self.informative[0]:
                self.informative = (info, z, c, work)

    def candidates(self) -> Iterator[View]:
        """Candidate views, one strategy at a time in the configured order."""
        per_strategy = {
            name: list(self._propose(name)) for name in self.options.strategies
        }
        for rank in range(max(map(len, per_strategy.values()), default=0)):
            for name in self.options.strategies:
                if rank < len(per_strategy[name]):
                    yield per_strategy[name][rank]

    def _propose(self, strategy: str) -> Iterator[View]:
        t, multi_z = self.t, self.scene.size_z > 1
        shown = list(range(self.channels))
        if strategy == "composite" and len(shown) > 1:
            planes = [self.mip[c] for c in shown[:3]]
            rgb = self.scene.samples == 3
            image = composite(planes, rgb, rgb and self.scene.dtype == np.uint8)
            yield View("composite", None, None, t, shown[:3], image)
        elif strategy == "mip" and multi_z:
            for c in shown:
                yield View("mip", None, c, t, [c], to_uint8(self.mip[c]))
        elif strategy == "best_focus" and multi_z:
            for c in shown:
                _, z, work = self.sharpest[c]
                yield View("best_focus", z, c, t, [c], to_uint8(work))
        elif strategy == "representative" and self.middle is not None:
            _, z, c, work = self.middle
            yield View("representative", z, c, t, [c], to_uint8(work))
            if self.informative is not None and self.informative[1:3] != (z, c):
                _, z, c, work = self.informative
                yield View("representative", z, c, t, [c], to_uint8(work))

    def result(self, thumbnails: str | os.PathLike | None = None) -> dict:
        """The kept views (as dicts) and the scene's ISCC-MIXED; writes PNGs if
        ``thumbnails`` names a directory."""
        kept: list[View] = []
        for view in self.candidates():
            view.iscc_image = image_code(view.image)
            if any(
                distance(view.iscc_image, k.iscc_image) <= self.options.dedupe_distance
                for k in kept
            ):
                continue
            kept.append(view)
            if len(kept) == self.options.max_views:
                break
        if not kept:  # only if every strategy was switched off for this scene
            _, z, c, work = self.middle
            view = View("representative", z, c, self.t, [c], to_uint8(work))
            view.iscc_image = image_code(view.image)
            kept.append(view)
        views = [v.to_dict(i) for i, v in enumerate(kept)]
        if thumbnails is not None:
            for v, d in zip(kept, views):
                name = f"scene{self.scene.index}.view{d['view_index']}.{v.strategy}.png"
                d["thumbnail"] = str(
                    save_png(
                        v.image, Path(thumbnails) / name, self.options.thumbnail_size
                    )
                )
        out = {"views": views, "iscc_mixed": mixed_code([v.iscc_image for v in kept])}
        if self.plane_images is not None:
            out["plane_images"] = self.plane_images
        return out


def view_options(
    config: Mapping[str, Any] | None, thumbnails_dir: str | None
) -> ViewOptions | None:
    """ViewOptions from the workflow's ``views`` config (None when disabled);
    missing keys take the library defaults."""
    config = dict(config or {})
    if not config.pop("enabled", True):
        return None
    thumbs = config.pop("thumbnails", True)
    config["strategies"] = tuple(config.get("strategies", ViewOptions.strategies))
    return ViewOptions(**config, thumbnails=thumbnails_dir if thumbs else None)
