"""TIFF, OME-TIFF and ImageJ TIFF, read page by page with tifffile.

Each TIFF page holds one plane (with its RGB samples), so a plane read is one
page decode: no dask graph, no whole-scene read. Axis names follow the rules of
bioio-tifffile (unknown ``Q``/``I`` axes are guessed from ``TCZYX``), so the dims
are the ones bioio would report. Layouts this adapter cannot map page-by-page
raise :class:`NotPageMappable`, and the caller falls back to bioio.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import replace

import numpy as np

from biocodes.errors import TruncatedError, UnreadableError
from biocodes.sources import metadata
from biocodes.sources.base import PlaneSource, SceneInfo, make_scene
from biocodes.sources.metadata import safely

UNKNOWN_AXES = "QI"
DEFAULT_ORDER = "TCZYX"
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")


class NotPageMappable(Exception):
    """The series does not store exactly one plane per page."""


def bioio_axes(axes: str, ndim: int) -> str:
    """Rename tifffile's unknown axes the way bioio-tifffile does."""
    if not any(a in UNKNOWN_AXES for a in axes):
        return axes
    guessed = DEFAULT_ORDER[len(DEFAULT_ORDER) - ndim :]
    best: list[str] = []
    for a in axes:
        if a not in UNKNOWN_AXES:
            best.append(a)
            continue
        pick = next((g for g in guessed if g not in best and g not in axes), a)
        best.append(pick)
    return "".join(best)


class _Series:
    """Page-index arithmetic for one tifffile series."""

    def __init__(self, path: str, index: int, series) -> None:  # noqa: ANN001
        kf = series.keyframe
        page_axes = kf.axes
        axes, shape = series.axes, tuple(series.shape)
        if kf.shaped[1] != 1 or not axes.endswith(page_axes):
            raise NotPageMappable(f"series {index} axes {axes} / page {page_axes}")
        outer_axes = bioio_axes(axes, len(shape))[: len(axes) - len(page_axes)]
        outer_shape = shape[: len(outer_axes)]
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
        if watch.messages:
            self.close()
            raise TruncatedError(
                path, f"file is truncated or damaged: {watch.messages[0]}"
            )
        try:
            self._series = [_Series(path, i, s) for i, s in enumerate(series)]
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

    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        series = self._series[scene.index]
        number = series.page_number(z, channel, t)
        page = series.pages[number]
        if page is None:
            raise TruncatedError(self.path, f"page {number} is missing")
        self._check_extent(page, number)
        with _OffsetWatch() as watch:
            try:
                data = page.asarray()
            except Exception as exc:
                raise UnreadableError(
                    self.path, f"cannot decode page {number}: {exc}"
                ) from None
        if watch.messages:
            raise UnreadableError(
                self.path, f"page {number} is damaged: {watch.messages[0]}"
            )
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
