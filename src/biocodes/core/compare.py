"""Compare two images plane by plane: which scenes, which planes, how much.

A biocode says *whether* two scenes hold the same pixels; this says *where*
they differ. Both images are opened with :func:`~biocodes.sources.open_source`
(files, filesets, plates, directory stores, remote stores) and walked in
IMAGEWALK order, one plane of each at a time (the next plane of B is read in
a thread while A's is read), so memory is bounded by a few planes whatever
the scene size.

Scenes are paired by index when both images have as many. Otherwise (a plate
against one of its fields, a multi-series file against a conversion that
kept some series) they are paired by content: first scenes with the same
per-scene ISCC-SUM (identical pixels), then the rest with the same dims and
dtype, in index order; what is left is unpaired. Pixels are equal when their
stored bit patterns are (what the codes hash), so ``-0.0`` differs from
``0.0`` and a NaN equals the same NaN.

The result (and the CLI's ``--json``) is documented in docs/cli.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from biocodes.core.codes import SceneHasher
from biocodes.core.imagewalk import SPEC, canonical_chunks, plane_order
from biocodes.core.prefetch import prefetch
from biocodes.infra.limits import Limits
from biocodes.sources import PlaneSource, SceneInfo, open_source

#: scene statuses, in the order a reader checks them
IDENTICAL = "identical"
PIXELS = "pixels"  # same dims and dtype, some planes differ
DIMS = "dims"  # different dims (the dtype may differ too)
DTYPE = "dtype"  # same dims, different dtype
ONLY_A = "only_a"  # no partner in B
ONLY_B = "only_b"  # no partner in A


def _unsigned(dtype: np.dtype) -> np.dtype:
    return np.dtype(f"u{dtype.itemsize}")


def plane_difference(a: np.ndarray, b: np.ndarray) -> tuple[int, float | int | None]:
    """How many pixels of two same-shaped, same-dtype planes differ (by their
    stored bits), and the largest absolute difference among them: exact for
    every integer type (64-bit included), float64 for floats, None where a
    differing pixel is NaN or infinite on either side."""
    ua = np.ascontiguousarray(a).view(_unsigned(a.dtype))
    ub = np.ascontiguousarray(b).view(_unsigned(b.dtype))
    mask = ua != ub
    count = int(np.count_nonzero(mask))
    if count == 0:
        return 0, 0
    va, vb = a[mask], b[mask]
    del mask
    if a.dtype.kind in "iu":
        # max - min wraps around exactly as an unsigned number: exact even
        # for int64 and uint64, where a difference does not fit the type
        hi, lo = np.maximum(va, vb), np.minimum(va, vb)
        with np.errstate(over="ignore"):
            diff = (hi - lo).view(_unsigned(a.dtype))
        return count, int(diff.max())
    diff = np.abs(va.astype(np.float64) - vb.astype(np.float64))
    if not np.all(np.isfinite(diff)):
        return count, None
    return count, float(diff.max())


def _scene_sums(source: PlaneSource) -> list[str]:
    """Each scene's ISCC-SUM (the content to pair scenes by), one plane at a
    time."""
    codes = []
    for scene in source.scenes:
        hasher = SceneHasher(plane_digests=False)
        for z, c, t in plane_order(scene):
            hasher.add_plane(canonical_chunks(source.read_plane(scene, z, c, t)))
        codes.append(hasher.result()["iscc_code"])
    return codes


def pair_scenes(
    a: list[SceneInfo],
    b: list[SceneInfo],
    codes_a: list[str] | None = None,
    codes_b: list[str] | None = None,
) -> list[tuple[int | None, int | None]]:
    """``(index in a, index in b)`` pairs, None for an unpaired side.

    Without codes, by index (the counts should be equal). With codes, first
    equal codes, then equal dims and dtype, each in index order; the rest
    unpaired. Ordered by A's index, then B's leftovers."""
    if codes_a is None or codes_b is None:
        n = max(len(a), len(b))
        return [
            (i if i < len(a) else None, i if i < len(b) else None) for i in range(n)
        ]
    partner: dict[int, int] = {}
    free = list(range(len(b)))
    for same in (
        lambda i, j: codes_a[i] == codes_b[j],
        lambda i, j: a[i].dims == b[j].dims and a[i].dtype == b[j].dtype,
    ):
        for i in range(len(a)):
            if i in partner:
                continue
            j = next((j for j in free if same(i, j)), None)
            if j is not None:
                partner[i] = j
                free.remove(j)
    pairs: list[tuple[int | None, int | None]] = [
        (i, partner.get(i)) for i in range(len(a))
    ]
    return pairs + [(None, j) for j in free]


def _planes(source: PlaneSource, scene: SceneInfo) -> Iterator[np.ndarray]:
    for z, c, t in plane_order(scene):
        yield source.read_plane(scene, z, c, t)


def compare_scene(sa: PlaneSource, a: SceneInfo, sb: PlaneSource, b: SceneInfo) -> dict:
    """Status of one pair of scenes and, for equal dims and dtype, every
    plane that differs: ``z``, ``c``, ``t``, ``offset`` (its place in the
    walk), ``pixels`` (how many differ) and ``max_abs_diff``."""
    entry = _scene_entry(a, b)
    if a.dims != b.dims:
        entry["status"] = DIMS
        return entry
    if a.dtype != b.dtype:
        entry["status"] = DTYPE
        return entry
    differences = []
    pairs = zip(_planes(sa, a), prefetch(_planes(sb, b)), strict=True)
    for offset, ((z, c, t), (pa, pb)) in enumerate(zip(plane_order(a), pairs)):
        count, largest = plane_difference(pa, pb)
        del pa, pb
        if count:
            differences.append(
                {
                    "z": z,
                    "c": c,
                    "t": t,
                    "offset": offset,
                    "pixels": count,
                    "max_abs_diff": largest,
                }
            )
    entry["status"] = PIXELS if differences else IDENTICAL
    entry["planes_differ"] = len(differences)
    entry["differences"] = differences
    return entry


def _scene_entry(a: SceneInfo | None, b: SceneInfo | None) -> dict:
    entry: dict = {}
    for side, scene in (("a", a), ("b", b)):
        entry[f"scene_{side}"] = None if scene is None else scene.index
        entry[f"name_{side}"] = None if scene is None else scene.name
        entry[f"dims_{side}"] = None if scene is None else scene.dims
        entry[f"dtype_{side}"] = None if scene is None else scene.dtype.name
    entry["planes"] = max(s.planes for s in (a, b) if s is not None)
    return entry


def _check_failures(source: PlaneSource) -> None:
    """A plate field that cannot be read fails the comparison: what it
    holds is unknown, so neither "identical" nor "differs" would be true."""
    failures = getattr(source, "scene_failures", {})
    if failures:
        raise next(iter(failures.values()))["error"]


def compare(
    a: str | os.PathLike,
    b: str | os.PathLike,
    limits: Limits | None = None,
    pairing: str = "auto",
) -> dict:
    """Compare the pixels of two images, scene by scene and plane by plane.

    ``pairing``: ``"index"``, ``"content"`` or ``"auto"`` (by index when the
    scene counts are equal, else by content). Returns ``identical`` (every
    scene paired and equal), ``pairing`` (the one used), both sides' path
    and ``format``, and one entry per scene pair (see docs/cli.md). Raises
    :class:`~biocodes.infra.errors.BiocodeError` when either image cannot be
    read: no answer is better than a wrong one.
    """
    if pairing not in ("auto", "index", "content"):
        raise ValueError(f"pairing must be auto, index or content, not {pairing!r}")
    limits = limits or Limits()
    with open_source(a, limits) as sa, open_source(b, limits) as sb:
        _check_failures(sa)
        _check_failures(sb)
        scenes_a, scenes_b = sa.scenes, sb.scenes
        if pairing == "auto":
            pairing = "index" if len(scenes_a) == len(scenes_b) else "content"
        codes_a = codes_b = None
        if pairing == "content":
            codes_a, codes_b = _scene_sums(sa), _scene_sums(sb)
        entries = []
        for i, j in pair_scenes(scenes_a, scenes_b, codes_a, codes_b):
            x = None if i is None else scenes_a[i]
            y = None if j is None else scenes_b[j]
            if x is None or y is None:
                entry = _scene_entry(x, y)
                entry["status"] = ONLY_A if y is None else ONLY_B
            elif codes_a is not None and codes_a[i] == codes_b[j]:
                entry = {**_scene_entry(x, y), "status": IDENTICAL}
                entry.update(planes_differ=0, differences=[])
            else:
                entry = compare_scene(sa, x, sb, y)
            entries.append(entry)
        result = {
            "a": str(a),
            "b": str(b),
            "format_a": sa.format,
            "format_b": sb.format,
            "identical": bool(entries)
            and all(e["status"] == IDENTICAL for e in entries),
            "pairing": pairing,
            "imagewalk_spec": SPEC,
            "scenes": entries,
        }
    return result


def summary(result: dict) -> str:
    """One line: identical, or how many scenes differ and how."""
    scenes = result["scenes"]
    bad = [e for e in scenes if e["status"] != IDENTICAL]
    if not bad:
        return f"identical: {len(scenes)} scene(s), every plane equal"
    return f"differ: {len(bad)} of {len(scenes)} scene pair(s) not identical"


def describe_scene(entry: dict, max_planes: int = 20) -> list[str]:
    """Human-readable lines for one scene pair (the CLI's text output)."""
    a, b = entry["scene_a"], entry["scene_b"]
    head = f"scene {'-' if a is None else a} <-> {'-' if b is None else b}"
    status = entry["status"]
    if status == ONLY_A:
        return [f"{head}: only in A ({entry['name_a']})"]
    if status == ONLY_B:
        return [f"{head}: only in B ({entry['name_b']})"]
    if status == IDENTICAL:
        return [f"{head}: identical ({entry['planes']} planes)"]
    if status in (DIMS, DTYPE):
        lines = [f"{head}: {'dims' if status == DIMS else 'dtype'} differ"]
        for side in "ab":
            dims = " ".join(f"{k}={v}" for k, v in entry[f"dims_{side}"].items())
            lines.append(f"  {side.upper()}: {dims} {entry[f'dtype_{side}']}")
        return lines
    lines = [f"{head}: {entry['planes_differ']} of {entry['planes']} planes differ"]
    for d in entry["differences"][:max_planes]:
        largest = "n/a (NaN or inf)" if d["max_abs_diff"] is None else d["max_abs_diff"]
        noun = "pixel differs" if d["pixels"] == 1 else "pixels differ"
        lines.append(
            f"  z={d['z']} c={d['c']} t={d['t']}: {d['pixels']} {noun}, "
            f"max |diff| {largest}"
        )
    more = len(entry["differences"]) - max_planes
    if more > 0:
        lines.append(f"  ... {more} more (--json lists every plane)")
    return lines


__all__ = [
    "compare",
    "compare_scene",
    "describe_scene",
    "pair_scenes",
    "plane_difference",
    "summary",
]
