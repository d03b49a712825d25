"""biocodes: pixel-content identifiers (IMAGEWALK ISCC-SUMs) for bioimages.

The public API: :func:`biocode`, :func:`imagecode`, :func:`iter_planes`,
:func:`compare`, :class:`ViewOptions` and :class:`BiocodeError`. They are
imported on first use, so ``import biocodes`` stays cheap for the CLI and
workflow jobs.
"""

from __future__ import annotations

from biocodes.infra.version import __version__

__all__ = [
    "BiocodeError",
    "ViewOptions",
    "__version__",
    "biocode",
    "compare",
    "imagecode",
    "iter_planes",
]


def __getattr__(name: str):
    if name in ("biocode", "imagecode"):
        from biocodes.core import fingerprint

        return getattr(fingerprint, name)
    if name == "compare":
        from biocodes.core.compare import compare

        return compare
    if name == "iter_planes":
        from biocodes.core.imagewalk import iter_planes

        return iter_planes
    if name == "ViewOptions":
        from biocodes.views.build import ViewOptions

        return ViewOptions
    if name == "BiocodeError":
        from biocodes.infra.errors import BiocodeError

        return BiocodeError
    raise AttributeError(name)
