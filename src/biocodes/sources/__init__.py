"""Open any image as a :class:`~biocodes.sources.base.PlaneSource`.

The choice of access path is made here, once, from the file's content where
its first bytes name the container: TIFF (any suffix: .svs, .lsm, .ndpi ...)
page by page with tifffile, PNG with a decoder that keeps the stored samples,
CZI plane by plane with aicspylibczi; zarr stores slice by slice with zarr
(also over ``s3://`` and ``http(s)://``). Everything else goes through the
bioio plugins and Bio-Formats whose own suffix lists claim the file's name.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from biocodes.infra.errors import (
    BiocodeError,
    EmptyImageError,
    UnreadableError,
    path_error,
    raise_as_reader_error,
)
from biocodes.infra.limits import Limits
from biocodes.sources.base import PlaneSource, SceneInfo

__all__ = ["PlaneSource", "SceneInfo", "open_source"]


def open_source(
    path: str | os.PathLike, limits: Limits | None = None, reader: str | None = None
) -> PlaneSource:
    """Open ``path`` with the fastest adapter that can map it plane by plane,
    and refuse scenes over ``limits`` (default :class:`Limits`) before any
    pixel is read. ``reader="bioformats"`` reads a file with Bio-Formats
    even where a native reader exists, to compare the two."""
    limits = limits or Limits()
    try:
        source = _open(path, limits, reader)
    except BiocodeError:
        raise
    except Exception as exc:  # a reader's own crash on this file
        raise_as_reader_error(str(path), exc)
    try:
        for scene in source.scenes:
            limits.check(source.path, scene)
    except BaseException:
        source.close()
        raise
    return source


def _stat(p: Path) -> os.stat_result:
    """stat() with each failure turned into the error a user can act on."""
    try:
        return p.stat()
    except OSError as exc:
        raise path_error(str(p), exc, stage="open") from None


def _open(path: str | os.PathLike, limits: Limits, reader: str | None) -> PlaneSource:
    from biocodes.infra.remote import is_remote

    if is_remote(path):  # only directory stores are read remotely
        from biocodes.sources.zarr import ZarrSource

        return ZarrSource(str(path), limits)
    p = Path(path)
    name = str(path)
    st = _stat(p)
    if stat.S_ISDIR(st.st_mode):
        from biocodes.sources.zarr import ZarrSource, is_zarr_store

        if not os.access(p, os.R_OK | os.X_OK):
            raise UnreadableError(name, "permission denied", stage="open")
        if not is_zarr_store(p):
            raise UnreadableError(
                name, "directory is not an image store (no zarr metadata)", stage="open"
            )
        return ZarrSource(name, limits)
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block forever on open
        raise UnreadableError(
            name, "not a regular file (a device, FIFO or socket)", stage="open"
        )
    if st.st_size == 0:
        raise EmptyImageError(name, "file is empty (0 bytes)", stage="open")
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise UnreadableError(
            name, f"cannot open: {exc.strerror}", stage="open"
        ) from None
    from biocodes.sources.fileset import FilesetSource, resolve

    fileset = resolve(p)
    if fileset is not None:  # a member opens the whole set, never its part
        return FilesetSource(name, fileset)
    from biocodes.sources.bioio import BIOFORMATS, BioioSource

    if reader == BIOFORMATS:
        return BioioSource(name, reader)
    kind = sniff(name)
    if kind == "tiff" and not _tiff_based_other_format(name):
        from biocodes.sources.tiff import NotPageMappable, TiffSource

        try:
            return TiffSource(name)
        except NotPageMappable:
            return BioioSource(name, reader, content=kind)
    if kind == "png":
        from biocodes.sources.png import PngSource, declared_scene

        limits.check(name, declared_scene(name))
        return PngSource(name)
    if kind == "czi":
        from biocodes.sources.czi import CziSource, NotPlaneMappable

        try:
            return CziSource(name)
        except NotPlaneMappable:
            return BioioSource(name, reader, content=kind)
    from biocodes.sources.pillow import PillowSource, open_image

    image = open_image(name)
    if image is not None:
        try:
            return PillowSource(name, image)
        except BaseException:
            image.close()
            raise
    return BioioSource(name, reader)


#: leading bytes of the formats whose reader is chosen by content, not name
MAGIC = {
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"II+\x00": "tiff",  # BigTIFF
    b"MM\x00+": "tiff",
    b"\x89PNG\r\n\x1a\n": "png",
    b"ZISRAWFILE": "czi",
}


def _tiff_based_other_format(path: str) -> bool:
    """Whether a TIFF file's name says it is the entry of another format
    whose pixels live elsewhere (Olympus .vsi with .ets files, ...): a name
    tifffile's own suffix list does not claim but a reader's list does.
    tifffile would read only the TIFF's own pages (a thumbnail)."""
    import tifffile

    from biocodes.sources import bioformats

    name = path.lower()
    if any(name.endswith("." + e) for e in tifffile.TIFF.FILE_EXTENSIONS):
        return False
    if name.rsplit(".", 1)[-1] in RECOGNISED_BY_CONTENT:  # a TIFF named .png
        return False
    return bioformats.claims(path)


#: suffixes of formats recognised by their content here: a file with one of
#: these names but another container's bytes is read as what its bytes say
RECOGNISED_BY_CONTENT = frozenset(
    "png jpg jpeg jpe jfif gif bmp dib pbm pgm ppm pnm czi".split()
)


def sniff(path: str) -> str | None:
    """The container a file's first bytes declare ("tiff", "png", "czi"), or
    None. An SVS, LSM or NDPI file is a TIFF whatever its name, so the same
    bytes get the same reader and the same scenes under any name."""
    with open(path, "rb") as f:
        head = f.read(16)
    return next((k for m, k in MAGIC.items() if head.startswith(m)), None)
