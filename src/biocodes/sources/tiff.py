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
from collections import Counter
from dataclasses import replace

import numpy as np

from biocodes.infra.errors import TruncatedError, UnreadableError
from biocodes.sources import metadata
from biocodes.sources.base import (
    Container,
    PlaneSource,
    SceneInfo,
    decoding,
    make_scene,
    package_version,
)
from biocodes.sources.metadata import safely

log = logging.getLogger(__name__)

UNKNOWN_AXES = "QI"
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")


class NotPageMappable(Exception):
    """The series does not store exactly one plane per page. ``container``
    is what the file's pages hold (:func:`inventory`): a fallback reader
    must account for exactly that."""

    def __init__(self, message: str, container: Container | None = None) -> None:
        super().__init__(message)
        self.container = container


def _declared_planes(series) -> int:  # noqa: ANN001
    """How many 2D planes (samples counted) a tifffile series says it has."""
    kf = series.keyframe
    return math.prod(series.shape) // (kf.imagelength * kf.imagewidth)


def _page_planes(page) -> int:  # noqa: ANN001
    """How many 2D planes (samples counted) one page (or frame) stores."""
    kf = getattr(page, "keyframe", None) or page
    return math.prod(page.shape) // (kf.imagelength * kf.imagewidth)


def inventory(tif, series: list) -> Container:  # noqa: ANN001
    """What the file holds by its own IFDs: every page of every series (a
    pyramid's reduced levels are no scenes and not counted), each page's
    planes (depth x samples) by plane shape. Where one page is followed by
    contiguous image data its description declares (ImageJ's files over
    4 GB, tifffile's ``truncate``), and that data lies inside the file, the
    declared planes are what the page holds."""
    planes: Counter[tuple[int, int, int]] = Counter()
    units = 0
    declared = []
    unordered = ""
    size = tif.filehandle.size
    for i, s in enumerate(series):
        kf = s.keyframe
        unnamed = [a for a, n in zip(s.axes, s.shape) if a in UNKNOWN_AXES and n > 1]
        if len(unnamed) > 1 and not unordered:
            unordered = (
                f"series {i} ({s.axes}, shape {tuple(s.shape)}) has "
                f"{len(unnamed)} unnamed axes longer than 1"
            )
        key = (kf.imagelength, kf.imagewidth, np.dtype(s.dtype).itemsize)
        # a series' pages share its keyframe's shape (tifffile builds them
        # so); a missing page (None) is damage tifffile reported already
        pages = len(s.pages)
        held = pages * _page_planes(kf)
        units += pages
        said = _declared_planes(s)
        if said != held:
            declared.append(f"its {s.kind} metadata says {said} planes")
            offset = s.dataoffset
            if pages == 1 and offset is not None and offset + s.nbytes <= size:
                held = said  # contiguous data after the one page
        planes[key] += held
    return Container("pages", dict(planes), units, "; ".join(declared), unordered)


def _description_disagrees(tif, series, damage: list[str]) -> str:  # noqa: ANN001
    """What an ImageJ or tifffile "shaped" description declares, where the
    file's pages contradict it (the planes it gives are not the planes the
    pages hold: ImageJ's image count or channels x slices x frames is not
    the page count, or pages of another shape follow); else "". Such a
    description is dropped and the pages are read in stored order, as
    Bio-Formats and ImageJ itself read them; never a subset of the pages,
    never planes read on past the last page. A description over a single
    page is kept: contiguous data after one IFD is how ImageJ writes files
    over 4 GB (the fallback's check guards that route), unless it is a
    tifffile shape from which tifffile cannot list a series at all (it
    raises on the shape ``[1, 1, 1, 1, 1]`` of one 1x1 page)."""
    if not (tif.is_imagej or tif.is_shaped):
        return ""
    pages = len(tif.pages)
    if pages == 1 and not (tif.is_shaped and isinstance(series, Exception)):
        return ""  # (a shape tifffile cannot map onto one page is dropped)
    if tif.is_imagej:
        ij = tif.imagej_metadata or {}
        keys = ("channels", "slices", "frames")
        csf = math.prod(int(ij.get(k) or 1) for k in keys)
        images = int(ij.get("images") or csf)
        said = f"ImageJ description says {images} images"
        if csf != images:
            said += f" and channels x slices x frames = {csf}"
    else:
        said = "tifffile shape description does not fit"
        if isinstance(series, Exception):
            said += f" (tifffile: {series})"
    if not (isinstance(series, Exception) or damage):
        # a series' pages share its keyframe's shape; never touch each page
        # (materialising 20 000 ImageJ frames takes seconds)
        declared = sum(_declared_planes(s) for s in series)
        listed = sum(len(s.pages) for s in series)
        held = sum(len(s.pages) * _page_planes(s.keyframe) for s in series)
        if declared == held and listed == pages:
            return ""
        if not tif.is_imagej:
            said = f"tifffile shape description says {declared} planes"
    return f"{said}, the file holds {pages} pages"


def _named_or_long(axes: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """A series' axes without the unnamed ones of size 1, wherever they
    stand. tifffile names a shaped description's trailing unit axis (an
    array of planes one pixel wide, ``(..., Y, 1)``) ``Q`` after ``YX``
    (``QQYXQ``): its pages are the last two axes that are not 1, which is
    how the file stores them and how Bio-Formats reads them."""
    kept = [(a, n) for a, n in zip(axes, shape) if not (a in UNKNOWN_AXES and n == 1)]
    return "".join(a for a, _ in kept), tuple(n for _, n in kept)


def stored_order(
    axes: str, shape: tuple[int, ...], page_ndim: int
) -> tuple[str, tuple[int, ...]]:
    """The page axes to walk, as (names, sizes), outermost first.

    Where the file does not say what an axis is (tifffile's ``Q``, or ``I``
    for a plain page sequence; e.g. its "shaped" description records a shape
    but no axes), the pages are walked in stored order as one axis, never
    split by a guessed C/Z/T. That axis is T, as Bio-Formats reads a plain
    page sequence (gray or RGB: the samples of an RGB page are C), and so do
    the OME-TIFF and OME-Zarr that bfconvert and bioformats2raw make of it
    (walk rules 2; until then RGB pages were walked pages-outer as C).
    Unknown axes of size 1 are dropped. ``page_ndim`` is kept for callers.
    """
    del page_ndim
    kept = [(a, n) for a, n in zip(axes, shape) if not (a in UNKNOWN_AXES and n == 1)]
    if not any(a in UNKNOWN_AXES for a, _ in kept):
        return "".join(a for a, _ in kept), tuple(n for _, n in kept)
    return "T", (math.prod(n for _, n in kept),)


#: tifffile's letters for OME Modulo sub-axes (angle, phase, tile, lifetime,
#: lambda, other)
MODULO_AXES = "APRHEQ"


def fold_modulo(
    axes: str, shape: tuple[int, ...], dimension_order: str
) -> tuple[str, tuple[int, ...]]:
    """The T/Z/C axes of an OME series with its Modulo sub-axes folded back
    into their parents, as the OME Pixels SizeT/SizeC/SizeZ say (Bio-Formats
    does the same: a Modulo annotation only labels positions of its parent).

    ``axes``/``shape`` are tifffile's unsqueezed outer axes (no Y, X, S).
    tifffile either splits a parent (``TQ``: the sub-axis right after it,
    varying faster, so parent x sub is the stored parent index) or, where the
    sub-axis is as long as its parent, renames it (``Q`` in place of ``T``);
    the parent order is the reverse of the DimensionOrder's ``ZCT`` part.
    Raises ValueError when the axes cannot be matched to it."""
    expected = dimension_order.upper()[2:][::-1]
    out: list[list] = []
    j = 0
    for a, n in zip(axes, shape):
        if j < len(expected) and a == expected[j]:
            out.append([a, n])
            j += 1
        elif a in MODULO_AXES and j < len(expected) and expected[j] not in axes:
            out.append([expected[j], n])  # renamed parent
            j += 1
        elif a in MODULO_AXES and out:
            out[-1][1] *= n  # split parent: fold back
        else:
            raise ValueError(f"axes {axes} do not follow {dimension_order}")
    return "".join(a for a, _ in out), tuple(n for _, n in out)


def _dimension_orders(xml: str) -> list[str]:
    """Each OME Image's Pixels DimensionOrder, in document order."""
    import xml.etree.ElementTree as ET

    return [
        e.get("DimensionOrder", "XYZCT")
        for e in ET.fromstring(xml).iter()
        if e.tag.rsplit("}", 1)[-1] == "Pixels"
    ]


class _Series:
    """Page-index arithmetic for one tifffile series."""

    def __init__(
        self,
        path: str,
        index: int,
        series,  # noqa: ANN001
        dimension_order: str | None = None,
    ) -> None:
        kf = series.keyframe
        page_axes = kf.axes
        axes, shape = _named_or_long(series.axes, tuple(series.shape))
        if kf.shaped[1] != 1 or not axes.endswith(page_axes):
            raise NotPageMappable(f"series {index} axes {axes} / page {page_axes}")
        n_outer = len(axes) - len(page_axes)
        outer_axes, outer_shape = stored_order(
            axes[:n_outer], shape[:n_outer], len(page_axes)
        )
        if dimension_order and any(a in MODULO_AXES for a in axes[:n_outer]):
            full = series.get_axes(squeeze=False)
            head = len(full.rstrip("YXS"))
            try:
                outer_axes, outer_shape = fold_modulo(
                    full[:head],
                    tuple(series.get_shape(squeeze=False))[:head],
                    dimension_order,
                )
            except ValueError as exc:
                raise NotPageMappable(f"series {index}: {exc}") from None
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


def _codec_name(compression: object) -> str:
    """tifffile's name of a page's compression. tifffile gives a plain int
    where the page has no Compression tag (ImageJ 1.51a writes none: 1, no
    compression, by the TIFF default) or an unknown code."""
    import tifffile

    try:
        return tifffile.COMPRESSION(int(compression)).name.lower()
    except ValueError:
        return f"compression {int(compression)}"


class TiffSource(PlaneSource):
    """A TIFF file whose series store one plane per page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._filesize = os.path.getsize(path)
        #: what a description the pages contradict declared (it was dropped)
        self.dropped = ""
        tif, series, damage = self._parse(path)
        dropped = _description_disagrees(tif, series, damage)
        if dropped:
            tif.close()
            tif, series, damage = self._parse(path, is_imagej=False, is_shaped=False)
            self.dropped = dropped
            log.info("%s: %s; read as a plain page sequence", path, dropped)
        self._tif = tif
        if isinstance(series, Exception):
            self.close()
            raise UnreadableError(path, f"not a readable TIFF ({series})")
        if damage:
            self.close()
            raise _damage_error(path, damage[0])
        orders: list[str] = []
        if tif.is_ome:
            orders = safely(path, lambda: _dimension_orders(tif.ome_metadata), [])
        try:
            scenes = [s for s in series if not _reduced_copy(s)]
            self._series = [
                _Series(path, i, s, orders[i] if i < len(orders) else None)
                for i, s in enumerate(scenes)
            ]
        except NotPageMappable as exc:
            try:  # no fallback goes unchecked: no inventory, no fallback
                container = inventory(tif, scenes)
            finally:
                self.close()
            raise NotPageMappable(str(exc), container) from None
        except BaseException:
            self.close()
            raise
        self.format = (
            "ome-tiff" if tif.is_ome else "imagej-tiff" if tif.is_imagej else "tiff"
        )
        if tif.is_ome:  # scene metadata from the OME-XML, one Image per series
            found = safely(path, lambda: metadata.ome_xml(tif.ome_metadata), [])
            for s, meta in zip(self._series, found):
                meta = metadata.expand_channels(meta, s.info.samples)
                s.info = replace(s.info, metadata=meta)

    @staticmethod
    def _parse(path: str, **flags: bool) -> tuple:
        """(TiffFile, its series or the exception listing them raised, the
        damage tifffile logged); ``flags`` turn off tifffile's readings of
        descriptions (``is_imagej=False``)."""
        import tifffile

        with _OffsetWatch() as watch:
            try:
                tif = tifffile.TiffFile(path, **flags)
            except Exception as exc:  # tifffile raises many types for bad files
                raise UnreadableError(path, f"not a readable TIFF ({exc})") from None
            try:
                series: list | Exception = list(tif.series)
            except Exception as exc:
                series = exc
        damage = [m for m in watch.messages if not _unparsable_ome_xml(m)]
        return tif, series, damage

    @property
    def scenes(self) -> list[SceneInfo]:
        return [s.info for s in self._series]

    def decoding(self, scene: SceneInfo) -> dict:
        """The compression of the scene's pages (tifffile's names)."""
        pages = self._series[scene.index].pages
        names = {
            _codec_name(p.compression)
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
