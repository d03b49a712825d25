"""The plane-source interface: what every reader adapter must provide.

Readers differ; the walk does not. An adapter opens one image and exposes its
scenes as :class:`SceneInfo` plus random access to single 2D planes. All format
quirks (axis names, RGB samples, pyramids, page layouts) stay inside adapters.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from biocodes.infra.errors import (
    BiocodeError,
    EmptyImageError,
    UnreadableError,
    UnsupportedError,
    raise_as_reader_error,
)

#: The version of the walk rules: how adapters map a file's axes onto T, C,
#: Z (which axis an unnamed page sequence is, how sub-axes fold into their
#: parent). A change that gives some file another code bumps it; it is in
#: each run's ``runs.walk_rules`` and in the settings key, so the next run
#: re-reads every image and the report says "walk rules changed" for new
#: codes instead of flagging them as an integrity problem. History:
#: 1: until issue 24. 2: a plain TIFF's page sequence is T (RGB pages were C,
#: pages outer); OME Modulo sub-axes fold into their parent axis.
WALK_RULES = "2"

#: dtypes the IMAGEWALK spec requires (§6.2), plus 64-bit integers, which we
#: encode the same way: 8 bytes, big-endian, two's complement for signed.
SUPPORTED_DTYPES = frozenset(
    np.dtype(t).str[1:]
    for t in ("u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f4", "f8")
)


def check_dtype(path: str, dtype: np.dtype) -> np.dtype:
    """Return the native-order dtype, or refuse one IMAGEWALK has no encoding for
    (bool, 1-bit samples, is read as uint8 0/1).

    bool, float16, complex and structured types have no agreed canonical bytes,
    so hashing them would produce codes no other implementation can reproduce.
    """
    dtype = np.dtype(dtype)
    if dtype == np.bool_:  # 1-bit samples: their stored values 0/1, one byte
        return np.dtype("uint8")  # each (Bio-Formats reads them the same way)
    if dtype.str[1:] not in SUPPORTED_DTYPES:
        raise UnsupportedError(
            path,
            f"pixel type {dtype} is not supported by IMAGEWALK "
            "(supported: uint8/16/32/64, int8/16/32/64, float32, float64)",
        )
    return dtype.newbyteorder("=")


class ChunkError(Exception):
    """A chunk the read needs is missing or damaged (raised by a chunk store,
    e.g. :class:`~biocodes.sources.zarr_store.CheckedStore`)."""


@dataclass(frozen=True)
class SceneInfo:
    """Shape and type of one scene, with RGB samples already counted as channels."""

    index: int
    name: str
    size_t: int
    size_c: int
    size_z: int
    size_y: int
    size_x: int
    dtype: np.dtype
    #: samples per pixel in the source (3 for RGB); size_c includes them
    samples: int = 1
    #: what the reader says about the scene (physical pixel sizes and units,
    #: channel names, acquisition date: see :mod:`biocodes.sources.metadata`);
    #: metadata only, never part of a code
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def planes(self) -> int:
        return self.size_z * self.size_c * self.size_t

    @property
    def plane_nbytes(self) -> int:
        return self.size_y * self.size_x * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.planes * self.plane_nbytes

    @property
    def dims(self) -> dict[str, int]:
        return {
            "T": self.size_t,
            "C": self.size_c,
            "Z": self.size_z,
            "Y": self.size_y,
            "X": self.size_x,
        }


def make_scene(
    path: str,
    index: int,
    name: str,
    sizes: dict[str, int],
    dtype: np.dtype,
    samples: int = 1,
) -> SceneInfo:
    """Build a validated SceneInfo from per-axis sizes (missing axes count as 1)."""
    dtype = check_dtype(path, dtype)
    t, c, z = (int(sizes.get(k, 1)) for k in "TCZ")
    y, x = int(sizes.get("Y", 0)), int(sizes.get("X", 0))
    shape = {"T": t, "C": c * samples, "Z": z, "Y": y, "X": x}
    if samples < 1 or min(shape.values()) < 1:
        raise EmptyImageError(
            path, f"scene {index} has a zero-size dimension {shape}, S={samples}"
        )
    return SceneInfo(index, name, t, c * samples, z, y, x, dtype, samples)


#: codecs whose decoded pixels can differ between decoders (lossy, or
#: lossy-capable: a JPEG 2000 stream may be reversible or not); lower case,
#: as tifffile, numcodecs/imagecodecs and zarr name them
LOSSY_CODECS = frozenset(
    """jpeg jpeg2000 jpeg2k j2k jp2k jpegxl jpegxr jpegxs jpeg_ls jpegls webp
    avif heif lerc imagecodecs_jpeg imagecodecs_jpeg2k imagecodecs_jpegxl
    imagecodecs_jpegxr imagecodecs_webp imagecodecs_avif imagecodecs_lerc
    """.split()
)


@functools.cache
def package_version(dist: str) -> str:
    """``"name version"`` of an installed distribution, for ``decoder``.
    Cached: a lookup walks site-packages (~8 ms), once or twice per image,
    and an installed version does not change while a worker runs."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return dist


def decoding(codecs: list[str] | None, decoder: str) -> dict:
    """The ``codec``, ``decoder`` and ``lossy`` of a scene (scenes table).

    The code of lossily compressed pixels depends on the decoder (two JPEG
    2000 decoders differ by ±1 in some pixels), so the decoder and its
    version are recorded and are part of the settings key. ``lossy`` is None
    when the reader does not say which codec the file uses."""
    names = sorted({c.lower() for c in codecs}) if codecs is not None else None
    return {
        "codec": None if names is None else ",".join(names) or "none",
        "decoder": decoder,
        "lossy": None if names is None else any(c in LOSSY_CODECS for c in names),
    }


@dataclass(frozen=True)
class Container:
    """What a container holds by its own directory (a TIFF's pages, a CZI's
    subblocks), found by the native parse before it refused the file.

    A fallback reader that reads a file the native adapter refused must
    account for exactly this: every stored plane used once, no more, no
    fewer. :meth:`check` is the one place that decides it, for every route
    around a native adapter (see :func:`biocodes.sources.open_source`)."""

    #: what one unit is called in messages: "pages", "subblocks"
    unit: str
    #: (Y, X, bytes per sample) -> number of 2D sample planes stored: an RGB
    #: page holds 3, a page of depth 4 holds 4
    planes: Mapping[tuple[int, int, int], int]
    #: how many units the container holds
    units: int
    #: what the metadata the native parse refused declares ("ImageJ
    #: description says 4 images"), for the message
    declared: str = ""
    #: why no reader can know the order of the stored planes ("series 0
    #: has 2 unnamed axes longer than 1"), or "": then every reader is refused
    unordered: str = ""

    def check(self, path: str, scenes: Sequence[SceneInfo], reader: str) -> None:
        """Refuse ``reader``'s ``scenes`` unless their planes are exactly the
        stored ones (count and shape per plane shape): a reader that reads
        fewer pages, or reads on past the last one, gives no code. Where the
        file names no axis for several runs of planes (``unordered``), a
        reader can only guess which is outer, so it gives no code either."""
        if self.unordered:
            raise UnreadableError(
                path,
                f"{self.unordered}: {reader} would name them by a guess and "
                "walk the stored planes in another order",
            )
        got: Counter[tuple[int, int, int]] = Counter()
        for s in scenes:
            got[(s.size_y, s.size_x, s.dtype.itemsize)] += s.planes
        if got == Counter(self.planes):
            return
        said = f"{self.declared}; " if self.declared else ""
        raise UnreadableError(
            path,
            f"{said}{reader} reads {_planes(got)}, the file holds {self.units} "
            f"{self.unit} ({_planes(self.planes)}): the reader does not "
            "account for exactly the stored pixels",
        )


def _planes(counts: Mapping[tuple[int, int, int], int]) -> str:
    """``6 planes of 10x12`` (or several shapes, comma-separated)."""
    parts = [
        f"{n} plane{'s' if n != 1 else ''} of {y}x{x}"
        for (y, x, _), n in sorted(counts.items())
    ]
    return ", ".join(parts) or "no planes"


class PlaneSource(ABC):
    """One opened image: its scenes, and single planes on request."""

    #: short name of the access path, recorded in the catalogue's ``format``
    format: str = "unknown"

    def __init__(self, path: str) -> None:
        self.path = str(path)
        # the last (Y, X, S) read: the samples of an RGB plane are read once
        self._last: tuple[tuple[int, int, int, int], np.ndarray] | None = None
        #: filled by the adapter while opening
        self._scenes: list[SceneInfo] = []

    @property
    def scenes(self) -> list[SceneInfo]:
        """All scenes, in ascending index order."""
        return self._scenes

    @abstractmethod
    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        """Read one source plane: (Y, X), or (Y, X, S) with samples in R, G, B order.

        ``channel`` is the source channel, before samples are counted as channels.
        """

    def read_plane(self, scene: SceneInfo, z: int, c: int, t: int) -> np.ndarray:
        """Read one IMAGEWALK plane (sample ``c % S`` of source channel
        ``c // S``) and check it is what the scene promised. A reader's
        crash is an :class:`UnreadableError`."""
        try:
            return self._checked_plane(scene, z, c, t)
        except BiocodeError:
            raise
        except Exception as exc:
            raise_as_reader_error(self.path, exc)
            raise  # not reached

    def _checked_plane(self, scene: SceneInfo, z: int, c: int, t: int) -> np.ndarray:
        channel, sample = divmod(c, scene.samples)
        if scene.samples == 1:
            plane = np.asarray(self._read_pixels(scene, z, channel, t))
        else:
            key = (scene.index, z, channel, t)
            if self._last is None or self._last[0] != key:
                pixels = np.asarray(self._read_pixels(scene, z, channel, t))
                want = (scene.size_y, scene.size_x, scene.samples)
                if pixels.shape != want:  # a reader that added or dropped samples
                    raise UnreadableError(
                        self.path,
                        f"scene {scene.index} plane z={z} c={channel} t={t}: the "
                        f"reader returned {pixels.shape}, the file declares {want}",
                    )
                self._last = (key, pixels)
            plane = self._last[1][..., sample]
        if plane.dtype == np.bool_:
            plane = plane.astype(np.uint8)  # not a view: Pillow stores True as 255
        if plane.shape != (scene.size_y, scene.size_x):
            raise UnreadableError(
                self.path,
                f"scene {scene.index} plane z={z} c={c} t={t} has shape "
                f"{plane.shape}, expected {(scene.size_y, scene.size_x)}",
            )
        if plane.dtype.newbyteorder("=") != scene.dtype:
            raise UnreadableError(
                self.path,
                f"scene {scene.index} plane dtype {plane.dtype} differs from "
                f"the declared {scene.dtype}",
            )
        return plane

    def finish_scene(self, scene: SceneInfo) -> dict:
        """Called once every plane of ``scene`` is read: what the read found
        that the scene's row records (a zarr store's ``chunks_absent``), or
        an error for a read that must not give a code. Default: nothing."""
        return {}

    def decoding(self, scene: SceneInfo) -> dict:
        """``codec`` (the file's compression of this scene, comma-separated,
        None if unknown), ``decoder`` (library and version) and ``lossy``;
        see :func:`decoding`. Adapters that know their codecs override it."""
        return decoding(None, package_version(self.format))

    def scene_decoding(self, scene: SceneInfo) -> dict:
        """:meth:`decoding`, or empty fields if working it out fails: what
        describes a scene never fails it (the failure is logged once)."""
        from biocodes.sources.metadata import safely

        empty = {"codec": None, "decoder": None, "lossy": None}
        return safely(self.path, lambda: self.decoding(scene), empty, "codec")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles."""

    def __enter__(self) -> PlaneSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
