"""Open any image as a :class:`~biocodes.sources.base.PlaneSource`.

The choice of access path is made here, once, from the file's content where
its first bytes name the container: TIFF (any suffix: .svs, .lsm, .ndpi ...)
page by page with tifffile, PNG with a decoder that keeps the stored samples,
CZI plane by plane with pylibCZIrw; zarr stores slice by slice with zarr
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
from biocodes.infra.location import FILESET, Location
from biocodes.sources.base import Container, PlaneSource, SceneInfo

__all__ = ["Location", "PlaneSource", "SceneInfo", "locate", "open_source"]


def locate(
    path: str | os.PathLike | Location, limits: Limits | None = None
) -> Location:
    """Where the bytes of the image at ``path`` are: a remote store, a
    directory store, a file, or, for a member of a multi-file OME-TIFF (see
    :mod:`biocodes.sources.fileset`), every file of its set. Resolved once
    per image; the state, the plane source and the raw-file ISCC-SUM all
    take the result. Raises a one-line error for fileset metadata that
    cannot be used; a missing or odd path is left for the open to explain."""
    if isinstance(path, Location):
        return path
    location = Location.plain(path, limits)
    if location.kind != "file":
        return location
    from biocodes.sources.fileset import resolve

    fileset = resolve(path)
    if fileset is None:
        return location
    return Location.fileset(
        path, fileset.entry, fileset.members, fileset.base, parsed=fileset
    )


def open_source(
    path: str | os.PathLike | Location,
    limits: Limits | None = None,
    reader: str | None = None,
) -> PlaneSource:
    """Open the image at ``path`` (or a :class:`Location`) with the fastest
    adapter that can map it plane by plane, and refuse scenes over
    ``limits`` (default :class:`Limits`) before any pixel is read.
    ``reader="bioformats"`` reads a file with Bio-Formats even where a
    native reader exists, to compare the two."""
    limits = limits or Limits()
    name = path.path if isinstance(path, Location) else str(path)
    try:
        source = _open(locate(path, limits), limits, reader)
    except BiocodeError:
        raise
    except Exception as exc:  # a reader's own crash on this file
        raise_as_reader_error(name, exc)
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


def _open(location: Location, limits: Limits, reader: str | None) -> PlaneSource:
    if location.remote is not None:  # only directory stores are read remotely
        from biocodes.sources.zarr import ZarrSource

        return ZarrSource(location.path, limits, remote=location.remote)
    p = Path(location.path)
    name = location.path
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
    if location.kind == FILESET and location.parsed is not None:
        from biocodes.sources.fileset import FilesetSource

        # a member opens the whole set, never its part
        return FilesetSource(name, location.parsed)
    from biocodes.sources.zarr import ZarrSource, is_zipped_zarr

    if is_zipped_zarr(name):  # .ozx: through the same checked store as a directory
        return ZarrSource(name, limits)
    from biocodes.sources.bioio import BIOFORMATS, BioioSource

    if reader == BIOFORMATS:
        return BioioSource(name, reader)
    kind = sniff(name)
    if kind == "tiff" and not _tiff_based_other_format(name):
        from biocodes.sources.tiff import NotPageMappable, TiffSource

        try:
            return TiffSource(name)
        except NotPageMappable as refused:
            return _fallback(name, reader, kind, refused.container)
    if kind == "png":
        from biocodes.sources.png import PngSource, declared_scene

        limits.check(name, declared_scene(name))
        return PngSource(name)
    if kind == "czi":
        from biocodes.sources.czi import (
            CziSource,
            NotPlaneMappable,
            check_fallback,
            check_fallback_safe,
        )

        try:
            return CziSource(name)
        except NotPlaneMappable as refused:
            container = getattr(refused, "container", None)
            why = str(refused)
        # bioio-czi reads with aicspylibczi, which aborts the process on some
        # layouts: refused by name before it is called
        check_fallback_safe(name, why)
        source = _fallback(name, reader, kind, container)
        try:  # a fallback is a reader too: every scene of the directory
            check_fallback(name, source)
        except BaseException:
            source.close()
            raise
        return source
    from biocodes.sources.pillow import PillowSource, open_image

    image = open_image(name)
    if image is not None:
        try:
            return PillowSource(name, image)
        except BaseException:
            image.close()
            raise
    return BioioSource(name, reader)


def _fallback(
    name: str, reader: str | None, kind: str, container: Container | None
) -> PlaneSource:
    """The bioio reader for a file its native adapter refused, checked
    against what the native parse found the container holds: its scenes
    must account for every stored page (subblock) once, or there is no code.
    Every route around a native adapter comes through here."""
    from biocodes.sources.bioio import BioioSource

    source = BioioSource(name, reader, content=kind)
    if container is None:
        return source
    try:
        container.check(name, source.scenes, f"the fallback reader ({source.format})")
    except BaseException:
        source.close()
        raise
    return source


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
