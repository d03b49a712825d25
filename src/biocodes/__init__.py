"""biocodes: pixel-content identifiers (IMAGEWALK ISCC-SUMs) for bioimages."""

from __future__ import annotations

from biocodes.infra.version import __version__

__all__ = ["__version__", "biocode", "imagecode", "iter_planes"]


def __getattr__(name: str):
    if name in ("biocode", "imagecode"):
        from biocodes.core import fingerprint

        return getattr(fingerprint, name)
    if name == "iter_planes":
        from biocodes.core.imagewalk import iter_planes

        return iter_planes
    raise AttributeError(name)
