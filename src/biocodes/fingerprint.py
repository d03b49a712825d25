"""The single pass over one image: planes in IMAGEWALK order into the hashers.

Every consumer of pixels (the scene ISCC-SUM, the simprints, the views) is fed
from the same read of each plane, so no pixel is read twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from biocodes import __version__
from biocodes.codes import SceneHasher, raw_file_code
from biocodes.imagewalk import canonical_chunks, plane_order
from biocodes.sources import PlaneSource, SceneInfo, open_source
from biocodes.views import ViewBuilder, ViewOptions

GENERATOR = f"biocodes - v{__version__}"

#: called with (scene, bytes done, bytes total) after each plane
Progress = Callable[[SceneInfo, int, int], None]


def scene_entry(scene: SceneInfo) -> dict:
    """What we say about a scene besides its codes."""
    return {
        "scene_index": scene.index,
        "scene_name": scene.name,
        "dims": scene.dims,
        "dtype": scene.dtype.name,
        "planes": scene.planes,
        "nbytes": scene.nbytes,
    }


def fingerprint_scene(
    source: PlaneSource,
    scene: SceneInfo,
    *,
    simprints: bool = False,
    views: ViewOptions | None = None,
    progress: Progress | None = None,
) -> dict:
    """ISCC-SUM (and simprints, views, ISCC-MIXED) of one scene, in one pass
    over its planes. View thumbnails go to ``views.thumbnails`` if set."""
    hasher = SceneHasher(simprints)
    viewer = ViewBuilder(scene, views) if views is not None else None
    done = 0
    for z, c, t in plane_order(scene):
        plane = source.read_plane(scene, z, c, t)
        hasher.add_plane(canonical_chunks(plane))
        if viewer is not None:
            viewer.add(z, c, t, plane)
        done += scene.plane_nbytes
        if progress is not None:
            progress(scene, done, scene.nbytes)
    entry = {**hasher.result(), **scene_entry(scene)}
    if viewer is not None:
        entry.update(viewer.result(views.thumbnails))
    return entry


def biocode(
    path: str | os.PathLike,
    simprints: bool = False,
    progress: Progress | None = None,
    views: ViewOptions | None = None,
) -> dict:
    """The biocode of one image: raw-file ISCC-SUM plus one part per scene.

    The dict matches iscc-bio 0.2.0's ``biocode`` result, plus ``format`` (the
    access path used) and, in each part, ``scene_index``, ``scene_name``,
    ``dims`` and ``dtype``; with ``views``, also ``views`` and ``iscc_mixed``
    (see :mod:`biocodes.views`). Any problem with
    the input raises :class:`~biocodes.errors.BiocodeError`; there is no
    partial result, because a code from wrong pixels is worse than none.
    """
    with open_source(path) as source:
        parts = [
            fingerprint_scene(
                source, scene, simprints=simprints, views=views, progress=progress
            )
            for scene in source.scenes
        ]
        fmt = source.format
    return {
        **raw_file_code(path),
        "generator": GENERATOR,
        "format": fmt,
        "parts": parts,
    }


def imagecode(
    path: str | os.PathLike,
    options: ViewOptions | None = None,
    simprints: bool = False,
) -> dict:
    """The biocode plus views, ISCC-IMAGE per view and ISCC-MIXED per scene."""
    return biocode(path, simprints=simprints, views=options or ViewOptions())
