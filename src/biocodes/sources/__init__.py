"""Open any image as a :class:`~biocodes.sources.base.PlaneSource`.

The choice of access path is made here, once: TIFF files are read page by
page with tifffile, CZI plane by plane with aicspylibczi, zarr stores slice by
slice with zarr, and everything else goes through bioio's plugins.
"""

from __future__ import annotations

import os
from pathlib import Path

from biocodes.errors import EmptyImageError, NotFoundError, UnreadableError
from biocodes.sources.base import PlaneSource, SceneInfo

__all__ = ["PlaneSource", "SceneInfo", "open_source"]


def open_source(path: str | os.PathLike) -> PlaneSource:
    """Open ``path`` with the fastest adapter that can map it plane by plane."""
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise NotFoundError(name, "no such file or directory", stage="open")
    if p.is_dir():
        from biocodes.sources.zarr import ZarrSource, is_zarr_store

        if not is_zarr_store(p):
            raise UnreadableError(
                name, "directory is not an image store (no zarr metadata)", stage="open"
            )
        return ZarrSource(name)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise UnreadableError(
            name, f"cannot stat: {exc.strerror}", stage="open"
        ) from None
    if size == 0:
        raise EmptyImageError(name, "file is empty (0 bytes)", stage="open")
    if not os.access(p, os.R_OK):
        raise UnreadableError(name, "permission denied", stage="open")
    from biocodes.sources.tiff import TIFF_SUFFIXES, NotPageMappable, TiffSource

    if p.name.lower().endswith(TIFF_SUFFIXES):
        try:
            return TiffSource(name)
        except NotPageMappable:
            pass
    if p.name.lower().endswith(".czi"):
        from biocodes.sources.czi import CziSource, NotPlaneMappable

        try:
            return CziSource(name)
        except NotPlaneMappable:
            pass
    from biocodes.sources.bioio import BioioSource

    return BioioSource(name)
