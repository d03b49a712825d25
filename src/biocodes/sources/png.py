"""PNG, read as the samples it stores.

Pillow (and so imageio and bioio-imageio) converts while decoding: 16-bit RGB
becomes 8-bit, gray+alpha becomes RGBA, a palette becomes RGB and 2- and
4-bit gray are scaled to 0..255 (Pillow#7723). libpng through imagecodecs
expands a ``tRNS`` chunk into an alpha channel and a palette into RGB. So the
scene comes from the header (IHDR, PNG spec §11.2.2) and the samples from a
decoder that keeps them: imagecodecs (libpng) where it provably does (8 or 16
bits per sample, no palette, no ``tRNS``, not interlaced), else pypng's
``Reader.read()``, which never converts. Either way the decoded array is
checked against the header before a byte is hashed.

Stored samples, not display: a palette image is its indices (the colour table
is display metadata, like a LUT); 1-, 2- and 4-bit samples are their stored
values (0..1, 0..3, 0..15) in uint8.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from biocodes.infra.errors import TruncatedError, UnreadableError, UnsupportedError
from biocodes.sources.base import (
    PlaneSource,
    SceneInfo,
    decoding,
    make_scene,
    package_version,
)

MAGIC = b"\x89PNG\r\n\x1a\n"
#: colour type -> samples per pixel (PNG spec §11.2.2, Table 11.1)
SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: allowed bit depths per colour type (same table)
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


@dataclass(frozen=True)
class PngHeader:
    """What a PNG declares: IHDR fields and the chunk types it holds."""

    width: int
    height: int
    depth: int
    color: int
    interlace: int
    chunks: frozenset[bytes]

    @property
    def samples(self) -> int:
        return SAMPLES[self.color]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("uint16" if self.depth == 16 else "uint8")

    @property
    def libpng_keeps_samples(self) -> bool:
        """Whether libpng (imagecodecs) returns the stored samples unchanged."""
        return (
            self.depth in (8, 16)
            and self.color != 3
            and not self.interlace
            and b"tRNS" not in self.chunks
        )


def is_png(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == MAGIC


def read_header(path: str) -> PngHeader:
    """IHDR and the chunk types, from the chunk headers only (nothing is
    decompressed). Raises a BiocodeError for a header that is not valid."""
    with open(path, "rb") as f:
        data = f.read(8 + 25)
        if len(data) < 33 or data[:8] != MAGIC or data[12:16] != b"IHDR":
            raise UnreadableError(path, "not a PNG file (no PNG signature and IHDR)")
        width, height, depth, color, comp, filt, interlace = struct.unpack(
            ">IIBBBBB", data[16:29]
        )
        if zlib.crc32(data[12:29]) != struct.unpack(">I", data[29:33])[0]:
            raise UnreadableError(path, "PNG header (IHDR) fails its CRC")
        if color not in SAMPLES or depth not in DEPTHS[color] or comp or filt:
            raise UnreadableError(
                path,
                f"PNG header declares an invalid image (bit depth {depth}, colour "
                f"type {color}, compression {comp}, filter {filt})",
            )
        chunks = set()
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise TruncatedError(path, "file is truncated: PNG ends before IEND")
            length, kind = struct.unpack(">I4s", head)
            chunks.add(kind)
            if kind == b"IEND":
                break
            f.seek(length + 4, 1)
    return PngHeader(width, height, depth, color, interlace, frozenset(chunks))


def declared_scene(path: str, header: PngHeader | None = None) -> SceneInfo:
    """The one scene a PNG declares: (Y, X) with its samples as channels."""
    h = header or read_header(path)
    return make_scene(path, 0, "png", {"Y": h.height, "X": h.width}, h.dtype, h.samples)


class PngSource(PlaneSource):
    """A PNG file: one scene, one plane per sample."""

    format = "png"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.header = read_header(path)
        if b"acTL" in self.header.chunks:
            raise UnsupportedError(
                path, "animated PNG (APNG): its frames are not read by biocodes"
            )
        self._scenes = [declared_scene(path, self.header)]
        self.decoder = _decoder_name(self.header)

    def decoding(self, scene: SceneInfo) -> dict:
        return decoding(["deflate"], self.decoder)

    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        h = self.header
        try:
            with open(self.path, "rb") as f:
                data = f.read()
            if h.libpng_keeps_samples:
                import imagecodecs

                pixels = imagecodecs.png_decode(data)
            else:
                import png

                width, height, rows, _ = png.Reader(bytes=data).read()
                pixels = np.vstack([np.asarray(row, h.dtype) for row in rows])
                pixels = pixels.reshape(height, width, h.samples)
        except Exception as exc:
            text = " ".join(str(exc).split())
            if any(w in text.lower() for w in ("truncat", "end of", "eof", "short")):
                raise TruncatedError(self.path, f"file is truncated: {text}") from None
            raise UnreadableError(self.path, f"cannot decode PNG: {text}") from None
        want = (h.height, h.width) + ((h.samples,) if h.samples > 1 else ())
        if h.samples == 1 and pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[..., 0]
        if pixels.shape != want or pixels.dtype != h.dtype:
            raise UnreadableError(
                self.path,
                f"decoder returned {pixels.shape} {pixels.dtype}, the PNG header "
                f"declares {want} {h.dtype}",
            )
        return pixels


def _decoder_name(h: PngHeader) -> str:
    if h.libpng_keeps_samples:
        return f"{package_version('imagecodecs')} (libpng)"
    return package_version("pypng")
