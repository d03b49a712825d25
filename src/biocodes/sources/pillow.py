"""Raster formats Pillow reads (JPEG, GIF, BMP, PNM), as the samples stored.

imageio (and so bioio-imageio) asks Pillow to convert palette images to RGB.
Here the image is opened with Pillow itself and read in the mode its header
declares, and only where that mode holds the stored samples unchanged
(:data:`MODES`, and :func:`_converted` for raw modes Pillow widens, such as
BMP's 5-bit RGB). A palette image is its indices: the colour table is display
metadata, like a LUT (docs/reading.md, "Stored samples"). Everything else is refused
as ``unsupported`` rather than hashed as converted pixels.

Sources: Pillow's image file format docs and its plugins' raw modes
(``ImageFile.tile``); PNG is read by :mod:`biocodes.sources.png`.
"""

from __future__ import annotations

import numpy as np

from biocodes.infra.errors import TruncatedError, UnreadableError, UnsupportedError
from biocodes.sources.base import (
    PlaneSource,
    SceneInfo,
    decoding,
    make_scene,
    package_version,
)

#: Pillow formats read here, and the codec each stores its pixels with
FORMATS = {"JPEG": "jpeg", "GIF": "lzw", "BMP": "none", "PPM": "none"}
#: Pillow mode -> (dtype, samples) for modes that hold the stored samples
MODES = {
    "1": ("uint8", 1),  # 1-bit samples, 0/1
    "L": ("uint8", 1),
    "P": ("uint8", 1),  # palette indices
    "LA": ("uint8", 2),
    "PA": ("uint8", 2),
    "RGB": ("uint8", 3),
    "RGBA": ("uint8", 4),
    "CMYK": ("uint8", 4),
    "I;16": ("uint16", 1),
    "I;16B": ("uint16", 1),
    "I;16L": ("uint16", 1),
    "I": ("int32", 1),
    "F": ("float32", 1),
}


def _converted(im) -> str | None:  # noqa: ANN001
    """Why Pillow's decoded samples are not the stored ones, or None.

    Raw modes with fewer than 8 bits per sample (BMP's ``BGR;15``/``BGR;16``,
    gray ``L;2``/``L;4``) are widened and rescaled by Pillow's unpackers, and
    inverted raw modes (``;I``) flip the values."""
    for tile in im.tile:
        args = tile.args if hasattr(tile, "args") else tile[3]
        raw = args[0] if isinstance(args, tuple) and args else args
        if not isinstance(raw, str):
            continue
        if any(t in raw for t in (";15", ";16", ";5", ";I", "L;2", "L;4")):
            return f"Pillow widens its {raw} samples to {im.mode}"
    return None


def open_image(path: str):  # noqa: ANN201
    """The image if Pillow recognises one of :data:`FORMATS` by content."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path, formats=list(FORMATS))
    except UnidentifiedImageError:
        return None
    except Exception as exc:
        raise UnreadableError(path, f"not a readable image ({exc})") from None


class PillowSource(PlaneSource):
    """One still image (or a single-frame GIF) read with Pillow, unconverted."""

    def __init__(self, path: str, image) -> None:  # noqa: ANN001
        super().__init__(path)
        self._im = image
        self.format = image.format.lower()
        frames = getattr(image, "n_frames", 1)
        if frames != 1:  # Pillow composites GIF frames onto each other
            raise UnsupportedError(
                path, f"animated {image.format} ({frames} frames) is not read"
            )
        if image.mode not in MODES:
            raise UnsupportedError(
                path, f"{image.format} in Pillow mode {image.mode!r} is not read"
            )
        why = _converted(image)
        if why:
            raise UnsupportedError(path, f"{why}: its stored samples are not read")
        self._mode = image.mode
        dtype, samples = MODES[image.mode]
        width, height = image.size
        self._scenes = [
            make_scene(path, 0, self.format, {"Y": height, "X": width}, dtype, samples)
        ]

    def decoding(self, scene: SceneInfo) -> dict:
        return decoding([FORMATS[self._im.format]], package_version("pillow"))

    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        try:
            self._im.load()
        except (OSError, SyntaxError, ValueError) as exc:
            text = " ".join(str(exc).split())
            if "truncat" in text.lower():
                raise TruncatedError(self.path, f"file is truncated: {text}") from None
            raise UnreadableError(self.path, f"cannot decode: {text}") from None
        if self._im.mode != self._mode:  # a plugin that changed mode on load
            raise UnreadableError(
                self.path,
                f"decoded as Pillow mode {self._im.mode}, declared {self._mode}",
            )
        return np.asarray(self._im)

    def close(self) -> None:
        im = getattr(self, "_im", None)
        if im is not None:
            im.close()
