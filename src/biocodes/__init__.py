"""biocodes: pixel-content identifiers (IMAGEWALK ISCC-SUMs) for bioimages."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "biocode", "iter_planes"]


def __getattr__(name: str):
    if name == "biocode":
        from biocodes.fingerprint import biocode

        return biocode
    if name == "iter_planes":
        from biocodes.imagewalk import iter_planes

        return iter_planes
    raise AttributeError(name)
