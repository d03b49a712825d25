"""The single pass over one image: planes in IMAGEWALK order into the hashers.

Every consumer of pixels (the scene ISCC-SUM, the simprints, the views) is fed
from the same read of each plane, so no pixel is read twice. The next plane is
read, decoded and turned into canonical bytes in a background thread while
the current one is hashed (see :mod:`biocodes.core.prefetch`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from biocodes.core.codes import SceneHasher, raw_file_code
from biocodes.core.imagewalk import SPEC, canonical_chunks, plane_order
from biocodes.core.prefetch import prefetch
from biocodes.infra.errors import BiocodeError, ChangedError
from biocodes.infra.limits import Limits
from biocodes.infra.location import FILESET, Location
from biocodes.infra.version import __version__
from biocodes.sources import PlaneSource, SceneInfo, locate, open_source
from biocodes.views.build import ViewBuilder, ViewOptions

GENERATOR = f"biocodes - v{__version__}"

#: Overlap reading with hashing in threads (default). ``BIOCODES_OVERLAP=0``
#: makes each image single-threaded: for workers that own exactly one core.
OVERLAP = os.environ.get("BIOCODES_OVERLAP", "1") != "0"
#: below this many pixel bytes, starting threads costs more than it saves
OVERLAP_MIN_BYTES = 4 << 20

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
        # what the reader says (pixel sizes, channel names, date); not hashed
        "metadata": dict(scene.metadata),
    }


def _prepared_planes(
    source: PlaneSource, scene: SceneInfo, keep_arrays: bool
) -> Iterator[tuple[tuple[int, int, int], np.ndarray | None, list[bytes]]]:
    """Each plane's position, array (only if wanted) and canonical bytes.

    Without views the array is dropped once it is bytes, so each plane in
    flight costs its size once."""
    for z, c, t in plane_order(scene):
        plane = source.read_plane(scene, z, c, t)
        chunks = list(canonical_chunks(plane))
        if not keep_arrays:
            plane = None
        yield (z, c, t), plane, chunks
        del plane, chunks  # not held while the next plane is read


def fingerprint_scene(
    source: PlaneSource,
    scene: SceneInfo,
    *,
    simprints: bool = False,
    views: ViewOptions | None = None,
    progress: Progress | None = None,
    overlap: bool | None = None,
    plane_digests: bool = True,
) -> dict:
    """ISCC-SUM (and simprints, views, ISCC-MIXED, plane digests) of one
    scene, in one pass over its planes. View thumbnails go to
    ``views.thumbnails`` if set. With ``overlap`` (default :data:`OVERLAP`)
    the next plane is read in a thread while this one is hashed."""
    hasher = SceneHasher(simprints, plane_digests)
    viewer = ViewBuilder(scene, views) if views is not None else None
    done = 0
    planes = _prepared_planes(source, scene, keep_arrays=viewer is not None)
    overlap = OVERLAP if overlap is None else overlap
    if overlap and scene.nbytes >= OVERLAP_MIN_BYTES:
        planes = prefetch(planes)
    for (z, c, t), plane, chunks in planes:
        hasher.add_plane(chunks)
        del chunks
        if viewer is not None:
            viewer.add(z, c, t, plane)
        done += scene.plane_nbytes
        if progress is not None:
            progress(scene, done, scene.nbytes)
    found = source.finish_scene(scene)  # may refuse the scene (before a code)
    entry = {
        **hasher.result(),
        **scene_entry(scene),
        **source.scene_decoding(scene),
        **found,
    }
    if viewer is not None:
        entry.update(viewer.result(views.thumbnails))
    return entry


def _scene_parts(source: PlaneSource, compute: Callable[[SceneInfo], dict]) -> list:
    """Each scene's part, in scene order. Where a source's scenes are
    independent images (a plate's fields), a scene that fails is a part with
    ``error`` and no codes, and the others still get theirs; elsewhere any
    failure fails the image. A plate's scenes carry plate, well, field and
    acquisition."""
    independent = getattr(source, "independent_scenes", False)
    failures = dict(getattr(source, "scene_failures", {}))
    meta = getattr(source, "scene_meta", {})
    parts = {}
    for scene in source.scenes:
        try:
            parts[scene.index] = compute(scene)
        except BiocodeError as exc:
            if not independent:
                raise
            failures[scene.index] = {"scene_name": scene.name, "error": exc}
    for index, failed in failures.items():
        parts[index] = {
            "iscc_code": None,
            "units": None,
            "scene_index": index,
            "scene_name": failed["scene_name"],
            "error": failed["error"].to_dict(),
        }
    return [{**parts[i], **meta.get(i, {})} for i in sorted(parts)]


def _state(location: Location) -> tuple[int, int] | None:
    try:
        return location.state()
    except (OSError, BiocodeError):
        return None  # open_source says why


def biocode(
    path: str | os.PathLike | Location,
    simprints: bool = False,
    progress: Progress | None = None,
    views: ViewOptions | None = None,
    overlap: bool | None = None,
    raw: dict | None = None,
    limits: Limits | None = None,
    before: tuple[int, int] | None = None,
    reader: str | None = None,
    plane_digests: bool = True,
) -> dict:
    """The biocode of one image: raw-file ISCC-SUM plus one part per scene.

    ``path`` names the image (a file, any member of a fileset, a directory
    store, a URL) or is its :class:`~biocodes.infra.location.Location`,
    resolved once (:func:`~biocodes.sources.locate`) and used for the state,
    the plane source and the raw-file code alike.

    The dict matches iscc-bio 0.2.0's ``biocode`` result, plus ``format`` (the
    access path used) and, in each part, ``scene_index``, ``scene_name``,
    ``dims`` and ``dtype``; with ``views``, also ``views`` and ``iscc_mixed``
    (see :mod:`biocodes.views.build`). Any problem with
    the input raises :class:`~biocodes.infra.errors.BiocodeError`; there is no
    partial result, because a code from wrong pixels is worse than none.
    With ``overlap`` (default :data:`OVERLAP`) the raw-file ISCC-SUM is
    computed in a second thread while the scenes are walked (both hashers
    release the GIL) and planes are read ahead; without, all runs in turn.
    ``imagewalk_spec`` names the published walk rules (IEP-0018).
    ``raw`` is the file's :func:`raw_file_code` when the caller just computed
    it, so the file is not hashed twice. Scenes over ``limits`` are refused
    before any pixel is read; a file whose size or mtime moves during the
    read raises :class:`~biocodes.infra.errors.ChangedError`; ``before`` is
    the location's :meth:`~biocodes.infra.location.Location.state` if the
    caller just took it (a remote store's costs a request per key).
    ``reader="bioformats"`` reads the file with Bio-Formats even if a native
    reader exists. Each part carries ``plane_digests`` (one 16-digit hex
    xxh3-64 of each plane's canonical bytes, IMAGEWALK order) unless
    ``plane_digests=False`` (benchmarks measure their cost that way).
    """
    limits = limits or Limits()
    location = locate(path, limits)
    if location.remote is not None and raw is None:
        # one download of each key: the raw-file walk keeps them on disk
        # for the pixel walk (so the two run in turn, not overlapped)
        before = before or _state(location)
        with location.remote.keeping_keys():
            raw = raw_file_code(location, limits=limits)
            return biocode(
                location,
                simprints,
                progress,
                views,
                overlap,
                raw,
                limits,
                before,
                reader,
                plane_digests,
            )
    overlap = OVERLAP if overlap is None else overlap
    cancel = threading.Event()
    before = before or _state(location)
    read = location  # what the raw-file code covers: a reader may add files
    with (
        open_source(location, limits, reader) as source,
        ThreadPoolExecutor(1, "biocodes-rawsum") as pool,
    ):
        if location.kind != FILESET:
            from biocodes.sources.fileset import bioformats_fileset

            used = bioformats_fileset(source)
            if used is not None:
                read = location.with_members(used.entry, used.members, used.base)
                raw = None  # a caller's raw code covered the entry file only
        big = sum(s.nbytes for s in source.scenes) >= OVERLAP_MIN_BYTES
        background = raw is None and overlap and big
        future = (
            pool.submit(raw_file_code, read, cancel, limits) if background else None
        )
        try:
            parts = _scene_parts(
                source,
                lambda scene: fingerprint_scene(
                    source,
                    scene,
                    simprints=simprints,
                    views=views,
                    progress=progress,
                    overlap=overlap,
                    plane_digests=plane_digests,
                ),
            )
        except BaseException:
            cancel.set()
            raise
        fmt = source.format
    if raw is None:
        raw = (
            future.result() if future is not None else raw_file_code(read, None, limits)
        )
    after = _state(location)
    if after != before:
        raise ChangedError(
            location.path,
            f"changed while being read (size, mtime {before} -> {after}); "
            "not stored, read again next run",
        )
    result = {
        **raw,  # with "note" when a remote store has no raw-file code
        "generator": GENERATOR,
        "imagewalk_spec": SPEC,
        "format": fmt,
        "parts": parts,
    }
    if read.kind == FILESET:
        result.update(fileset_entry(read))
    return result


def plate_field_count(
    path: str | os.PathLike, limits: Limits | None = None
) -> int | None:
    """How many fields an OME-Zarr plate has (reading only plate and well
    attributes), or None if ``path`` is not a plate."""
    from biocodes.sources.zarr import ZarrSource

    with ZarrSource(str(path), limits, fields=range(0)) as source:
        return getattr(source, "field_count", None)


def fingerprint_fields(
    path: str | os.PathLike,
    fields: range,
    simprints: bool = False,
    views: ViewOptions | None = None,
    limits: Limits | None = None,
) -> list[dict]:
    """The parts of some fields of a plate (by scene index), read one at a
    time: a large plate is hashed in pieces, on several workers. A field
    that fails is its part's ``error``. The raw-file code and the plate's
    change check are the caller's (see :func:`biocodes.repository.shard.run_shard`)."""
    from biocodes.sources.zarr import ZarrSource

    limits = limits or Limits()
    with ZarrSource(str(path), limits, fields=fields) as source:
        for scene in source.scenes:
            limits.check(source.path, scene)
        return _scene_parts(
            source,
            lambda scene: fingerprint_scene(
                source, scene, simprints=simprints, views=views
            ),
        )


def fileset_entry(location: Location) -> dict:
    """``entry`` (the file the set is opened from), ``folder`` (the folder
    holding every member) and ``files`` (every member, relative to
    ``folder``, in raw-code order, with its size and mtime): what the result
    says about an image made of several files."""
    return {
        "entry": location.entry,
        "folder": location.base,
        "files": [
            {"path": location.relpath(m), "size": size, "mtime_ns": mtime}
            for m, size, mtime in location.member_states()
        ],
    }


def imagecode(
    path: str | os.PathLike,
    options: ViewOptions | None = None,
    simprints: bool = False,
) -> dict:
    """The biocode plus views, ISCC-IMAGE per view and ISCC-MIXED per scene."""
    return biocode(path, simprints=simprints, views=options or ViewOptions())
