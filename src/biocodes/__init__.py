"""biocodes: pixel-content identifiers (IMAGEWALK ISCC-SUMs) for bioimages.

The public API: :func:`biocode`, :func:`imagecode`, :func:`iter_planes`,
:func:`compare`, :class:`ViewOptions` and :class:`BiocodeError`. They are
imported on first use, so ``import biocodes`` stays cheap for the CLI and
workflow jobs.
"""

from __future__ import annotations

import os
from typing import Any

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


def _own_folder(path: str | os.PathLike, views: Any) -> Any:
    """``views`` with thumbnails in a folder of this image's own under the
    directory given (``<file name>-<8 hex of its absolute path>``), so a
    second image never overwrites the first's."""
    if views is None or views.thumbnails is None:
        return views
    import hashlib
    from dataclasses import replace

    full = os.path.abspath(os.fspath(path))
    tag = hashlib.sha256(os.fsencode(full)).hexdigest()[:8]
    name = os.path.basename(full.rstrip("/")) or "image"
    return replace(views, thumbnails=os.path.join(views.thumbnails, f"{name}-{tag}"))


def biocode(path: str | os.PathLike, simprints: bool = False, **options: Any) -> dict:
    """The biocode of one image, as one line of ``biocodes biocode --json``:
    ``path`` (as given), the raw-file ``iscc_code`` and one part per scene.
    ``options`` are :func:`biocodes.core.fingerprint.biocode`'s (``views``,
    ``limits``, ``reader``...); thumbnails of ``views`` go to a folder of the
    image's own under ``views.thumbnails``."""
    from biocodes.core import fingerprint

    if "views" in options:
        options["views"] = _own_folder(path, options["views"])
    result = fingerprint.biocode(path, simprints, **options)
    return {"path": os.fspath(path), **result}


def imagecode(
    path: str | os.PathLike, options: Any = None, simprints: bool = False
) -> dict:
    """The biocode plus views (ISCC-IMAGE per view, ISCC-MIXED per scene), with
    ``path``; thumbnails as for :func:`biocode`."""
    from biocodes.views.build import ViewOptions

    return biocode(path, simprints, views=options or ViewOptions())


def __getattr__(name: str):
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
