"""TIFF, OME-TIFF and ImageJ TIFF, read page by page with tifffile.

Each TIFF page holds one plane (with its RGB samples), so a plane read is one
page decode: no dask graph, no whole-scene read. Axes the file names (OME-XML,
ImageJ, tifffile's metadata) are used as named; pages whose axes the file does
not name are walked in stored order (:func:`stored_order`). Layouts this
adapter cannot map page-by-page raise :class:`NotPageMappable`, and the caller
falls back to bioio.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import replace

import numpy as np

from biocodes.infra.errors import TruncatedError, UnreadableError
from biocodes.sources import metadata
from biocodes.sources.base import (
    PlaneSource,
    SceneInfo,
    decoding,
    make_scene,
    package_version,
)
from biocodes.sources.metadata import safely

UNKNOWN_AXES = "QI"
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")


class NotPageMappable(Exception):
    """The series does not store exactly one plane per page."""


def stored_order(
    axes: str, shape: tuple[int, ...], page_ndim: int
) -> tuple[str, tuple[int, ...]]:
    """The page axes to walk, as (names, sizes), outermost first.

    Where the file does not say what an axis is (tifffile's ``Q``, or ``I``
    for a plain page sequence; e.g. its "shaped" description records a shape
    but no axes), the pages are walked in stored order as one axis, never
    split by a guessed C/Z/T: Bio-Formats reads such a file as a sequence of
    pages too. The merged axis is named as bioio-tifffile names a lone
    unknown axis (the first free of ``TCZ`` counted back from Y: Z for gray
    pages, C for RGB pages); Bio-Formats calls it T. The code is the same
    whatever the name. Unknown axes of size 1 are dropped.
    """
    kept = [(a, n) for a, n in zip(axes, shape) if not (a in UNKNOWN_AXES and n == 1)]
    if not any(a in UNKNOWN_AXES for a, _ in kept):
        return "".join(a for a, _ in kept), tuple(n for _, n in kept)
    guess = "TCZYX"[len("TCZYX") - 1 - page_ndim]
    return guess, (math.prod(n for _, n in kept),)


class _Series:
    """Page-index arithmetic for one tifffile series."""

    def __init__(self, path: str, index: int, series) -> None:  # noqa: ANN001
        kf = series.keyframe
        page_axes = kf.axes
        axes, shape = series.axes, tuple(series.shape)
        if kf.shaped[1] != 1 or not axes.endswith(page_axes):
            raise NotPageMappable(f"series {index} axes {axes} / page {page_axes}")
        n_outer = len(axes) - len(page_axes)
        outer_axes, outer_shape = stored_order(
            axes[:n_outer], shape[:n_outer], len(page_axes)
        )
        if math.prod(outer_shape) != len(series.pages):
            raise NotPageMappable(f"series {index}: pages do not match shape")
        sizes: dict[str, int] = {}
        for a, n in zip(outer_axes, outer_shape):
            if a in "TCZ" and a not in sizes:
                sizes[a] = n
            elif n != 1:
                raise NotPageMappable(f"series {index} has axis {a!r} of size {n}")
        self.outer_axes, self.outer_shape = outer_axes, outer_shape
        self.sample_axis = page_axes.index("S") if "S" in page_axes else None
        samples = kf.shape[self.sample_axis] if self.sample_axis is not None else 1
        sizes["Y"], sizes["X"] = kf.imagelength, kf.imagewidth
        name = getattr(series, "name", "") or f"Image:{index}"
        self.info = make_scene(path, index, name, sizes, series.dtype, samples)
        self.pages = series.pages

    def page_number(self, z: int, c: int, t: int) -> int:
        pos = {"Z": z, "C": c, "T": t}
        coords = [pos.get(a, 0) if a in "TCZ" else 0 for a in self.outer_axes]
        return int(np.ravel_multi_index(coords, self.outer_shape)) if coords else 0


def _unparsable_ome_xml(message: str) -> bool:
    """Whether tifffile gave up on OME-XML that is not well-formed XML. The
    file then has no OME metadata at all and tifffile reads its pages as a
    plain TIFF stack, as Bio-Formats does (ome/bioformats#2068): that is the
    file's content, not damage. OME-XML that parses but disagrees with the
    pages (or names files that are missing) is never read as a plain stack:
    its pages may be part of a larger image."""
    return "OME series raised ParseError" in message


def _reduced_copy(series) -> bool:  # noqa: ANN001
    """Whether a series is a downsampled copy of another: an Aperio SVS
    thumbnail (its second page). Like pyramid levels it is not a scene;
    Bio-Formats' SVS reader does not show it as a series either, so an SVS
    file has the scenes Bio-Formats gives (baseline, label, macro) under any
    name."""
    return series.kind == "svs" and series.name == "Thumbnail"


#: tifffile's words for data that lies past the end of the file
_CUT_SHORT = ("offset", "end of file", "eof", "truncat", "beyond")


def _damage_error(path: str, message: str) -> UnreadableError | TruncatedError:
    """The error for a warning tifffile logged while opening: ``truncated``
    when it found data past the end of the file, else ``unreadable`` (its
    header or metadata is wrong: the user needs another copy or a fixed
    header, not a longer file)."""
    if any(w in message.lower() for w in _CUT_SHORT):
        return TruncatedError(path, f"file is truncated or damaged: {message}")
    return UnreadableError(path, f"TIFF header or metadata is damaged: {message}")


class _OffsetWatch(logging.Handler):
    """Catch tifffile's warnings: it reports damage (tags past the end of the
    file, strips of the wrong size, OME metadata that contradicts the pages)
    only by logging, and then goes on with zeros or a guessed layout."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _OffsetWatch:
        log = logging.getLogger("tifffile")
        self._level = log.level
        if log.getEffectiveLevel() > logging.WARNING:  # seen, whatever the app set
            log.setLevel(logging.WARNING)
        log.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        log = logging.getLogger("tifffile")
        log.removeHandler(self)
        log.setLevel(self._level)


def decode_page(path: str, page, what: str) -> np.ndarray:  # noqa: ANN001
    """Decode one TIFF page, watching tifffile's damage warnings: it logs a
    strip of the wrong size and goes on with zeros. ``what`` names the page
    in the messages (e.g. "page 3")."""
    with _OffsetWatch() as watch:
        try:
            data = page.asarray()
        except Exception as exc:
            raise UnreadableError(path, f"cannot decode {what}: {exc}") from None
    if watch.messages:
        raise UnreadableError(path, f"{what} is damaged: {watch.messages[0]}")
    return data


class TiffSource(PlaneSource):
    """A TIFF file whose series store one plane per page."""

    def __init__(self, path: str) -> None:
        import tifffile

        super().__init__(path)
        self._filesize = os.path.getsize(path)
        with _OffsetWatch() as watch:
            try:
                self._tif = tifffile.TiffFile(path)
                series = list(self._tif.series)
            except Exception as exc:  # tifffile raises many types for bad files
                raise UnreadableError(path, f"not a readable TIFF ({exc})") from None
        damage = [m for m in watch.messages if not _unparsable_ome_xml(m)]
        if damage:
            self.close()
            raise _damage_error(path, damage[0])
        try:
            scenes = [s for s in series if not _reduced_copy(s)]
            self._series = [_Series(path, i, s) for i, s in enumerate(scenes)]
        except BaseException:
            self.close()
            raise
        tif = self._tif
        self.format = (
            "ome-tiff" if tif.is_ome else "imagej-tiff" if tif.is_imagej else "tiff"
        )
        if tif.is_ome:  # scene metadata from the OME-XML, one Image per series
            found = safely(path, lambda: metadata.ome_xml(tif.ome_metadata), [])
            for s, meta in zip(self._series, found):
                meta = metadata.expand_channels(meta, s.info.samples)
                s.info = replace(s.info, metadata=meta)

    @property
    def scenes(self) -> list[SceneInfo]:
        return [s.info for s in self._series]

    def decoding(self, scene: SceneInfo) -> dict:
        """The compression of the scene's pages (tifffile's names)."""
        pages = self._series[scene.index].pages
        names = {
            p.compression.name.lower()
            for p in (pages[0], pages[len(pages) - 1])
            if p is not None
        }
        tools = f"{package_version('tifffile')}, {package_version('imagecodecs')}"
        return decoding(sorted(names), tools)

    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        series = self._series[scene.index]
        number = series.page_number(z, channel, t)
        page = series.pages[number]
        if page is None:
            raise TruncatedError(self.path, f"page {number} is missing")
        self._check_extent(page, number)
        data = decode_page(self.path, page, f"page {number}")
        if series.sample_axis is not None:  # planar (S, Y, X) pages: samples last
            data = np.moveaxis(data, series.sample_axis, -1)
        return data

    def _check_extent(self, page, number: int) -> None:  # noqa: ANN001
        """Refuse pages whose data lies past the end of the file.

        tifffile fills such pages with zeros and only logs a warning; hashing
        them would give a valid-looking code for pixels that are not there.
        """
        for offset, count in zip(page.dataoffsets, page.databytecounts):
            if count and offset + count > self._filesize:
                raise TruncatedError(
                    self.path,
                    f"file is truncated: page {number} needs bytes up to "
                    f"{offset + count}, file has {self._filesize}",
                )

    def close(self) -> None:
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()
            self._tif = None
