"""IMAGEWALK: the plane order and the canonical bytes, nothing else.

Spec: IMAGEWALK, published as ISCC Enhancement Proposal IEP-0018 (Draft;
the iscc-bio draft of 2025-10-03). Scenes in ascending order;
planes with Z outermost, then C, then T innermost; each plane flattened
row-major and encoded big-endian.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from biocodes.sources import PlaneSource, SceneInfo, open_source

#: the published spec these codes follow: recorded in ``runs.imagewalk_spec``
#: and in the CLI's JSON (``imagewalk_spec``)
SPEC = "IEP-0018 (Draft)"
#: the walk rules as implemented: part of the catalogue's settings key, so it
#: changes only when a rule (and so a code) changes, never for a new name of
#: the same rules (IEP-0018 is the draft of 2025-10-03, published)
SPEC_VERSION = "IMAGEWALK draft 2025-10-03"

#: the hasher is fastest on updates of at most 1 MiB
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Plane:
    """One 2D plane and where it sits in the walk."""

    scene_index: int
    z: int
    c: int
    t: int
    array: np.ndarray


def plane_order(scene: SceneInfo) -> Iterator[tuple[int, int, int]]:
    """Yield ``(z, c, t)`` in IMAGEWALK order: Z outer, C middle, T inner."""
    for z in range(scene.size_z):
        for c in range(scene.size_c):
            for t in range(scene.size_t):
                yield z, c, t


def plane_position(offset: int, size_c: int, size_t: int) -> tuple[int, int, int]:
    """``(z, c, t)`` of the plane at ``offset`` in :func:`plane_order`."""
    z, rest = divmod(offset, size_c * size_t)
    c, t = divmod(rest, size_t)
    return z, c, t


def walk(source: PlaneSource, scene: SceneInfo) -> Iterator[Plane]:
    """Read the planes of one scene in IMAGEWALK order, one at a time."""
    for z, c, t in plane_order(scene):
        yield Plane(scene.index, z, c, t, source.read_plane(scene, z, c, t))


def iter_planes(path: str | os.PathLike) -> Iterator[Plane]:
    """Yield every plane of every scene of ``path`` in IMAGEWALK order."""
    with open_source(path) as source:
        for scene in source.scenes:
            yield from walk(source, scene)


def canonical_chunks(
    array: np.ndarray, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """Yield the plane's canonical bytes in pieces of at most ``chunk_bytes``.

    Row-major order and big-endian byte order, whatever the memory layout of
    ``array``. Byte-swapping goes through one reused buffer per plane instead of
    a full-size ``astype`` copy.
    """
    if array.ndim != 2:
        raise ValueError(f"IMAGEWALK planes are 2D, got shape {array.shape}")
    flat = np.ascontiguousarray(array).reshape(-1)
    big = flat.dtype.newbyteorder(">")
    step = max(1, chunk_bytes // flat.dtype.itemsize)
    if flat.dtype.itemsize == 1 or flat.dtype == big:
        for i in range(0, flat.size, step):
            yield flat[i : i + step].tobytes()
        return
    buffer = np.empty(min(step, flat.size), dtype=big)
    for i in range(0, flat.size, step):
        part = flat[i : i + step]
        out = buffer[: part.size]
        np.copyto(out, part)
        yield out.tobytes()


def canonical_bytes(array: np.ndarray) -> bytes:
    """The whole plane's canonical bytes (tests and small planes)."""
    return b"".join(canonical_chunks(array))
