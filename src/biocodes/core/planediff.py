"""Which planes of a scene changed, from the plane digests alone.

The catalogue keeps one xxh3-64 per plane (``scenes.plane_digests``, 8 bytes
per plane in IMAGEWALK order), so a night whose pixel code changed, or a
``verify`` that disagrees, can say *which* planes differ without the old
pixels: "3 of 64 planes differ: z=12 c=0..2 t=0". Scenes whose shape or
pixel type changed say that instead, since their planes do not line up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from biocodes.core.codes import DIGEST_BYTES
from biocodes.core.imagewalk import plane_position

#: at most this many groups of planes are named; the rest are counted
MAX_GROUPS = 8
SHAPE = ("size_z", "size_c", "size_t", "size_y", "size_x")


def differing_planes(before: bytes, after: bytes) -> list[int]:
    """Offsets (IMAGEWALK order) of the planes whose digests differ; both
    sides must hold the same number of planes."""
    n = len(before) // DIGEST_BYTES
    if len(before) != len(after) or len(before) % DIGEST_BYTES:
        raise ValueError("plane digests of different plane counts")
    return [
        i
        for i in range(n)
        if before[i * DIGEST_BYTES : (i + 1) * DIGEST_BYTES]
        != after[i * DIGEST_BYTES : (i + 1) * DIGEST_BYTES]
    ]


def _ranges(values: Sequence[int]) -> str:
    """``0..2,5`` for [0, 1, 2, 5] (sorted, distinct)."""
    out: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(str(start) if start == prev else f"{start}..{prev}")
        if v is not None:
            start = prev = v
    return ",".join(out)


def _merge_runs(items: list[tuple[int, object]]) -> list[tuple[list[int], object]]:
    """Consecutive keys with equal values joined: [(keys, value), ...]."""
    merged: list[tuple[list[int], object]] = []
    for key, value in items:
        if merged and merged[-1][1] == value and merged[-1][0][-1] == key - 1:
            merged[-1][0].append(key)
        else:
            merged.append(([key], value))
    return merged


def plane_groups(offsets: Sequence[int], size_c: int, size_t: int) -> list[str]:
    """The planes at ``offsets`` as compact groups, e.g. ``z=12 c=0..2 t=0``:
    per Z, channels with the same time points are joined, then Z planes
    with the same channels and time points."""
    per_z: dict[int, dict[int, list[int]]] = {}
    for offset in sorted(offsets):
        z, c, t = plane_position(offset, size_c, size_t)
        per_z.setdefault(z, {}).setdefault(c, []).append(t)
    rows = []
    for z, per_c in per_z.items():
        by_c = [(c, _ranges(ts)) for c, ts in per_c.items()]
        rows.append((z, tuple((_ranges(cs), t) for cs, t in _merge_runs(by_c))))
    groups = []
    for zs, cts in _merge_runs(rows):
        for cs, ts in cts:
            groups.append(f"z={_ranges(zs)} c={cs} t={ts}")
    return groups


def describe_planes(
    offsets: Sequence[int], total: int, size_c: int, size_t: int
) -> str:
    """``3 of 64 planes differ: z=12 c=0..2 t=0`` (groups after
    :data:`MAX_GROUPS` are counted, not named)."""
    n = len(offsets)
    if n == 0:
        return f"no plane of {total} differs"
    verb = "differs" if n == 1 else "differ"
    noun = "plane" if total == 1 else "planes"
    groups = plane_groups(offsets, size_c, size_t)
    shown = "; ".join(groups[:MAX_GROUPS])
    if len(groups) > MAX_GROUPS:
        shown += f"; and {len(groups) - MAX_GROUPS} more groups"
    return f"{n} of {total} {noun} {verb}: {shown}"


def _shape(scene: Mapping) -> str:
    return "x".join(str(scene.get(k)) for k in SHAPE)


def scene_difference(before: Mapping, after: Mapping) -> str:
    """How a scene's pixels changed, from two ``scenes`` rows (or parts
    turned into such rows): its shape (ZCTYX), its pixel type, or which
    planes; "planes not known" where either side has no plane digests."""
    if _shape(before) != _shape(after):
        return f"shape differs: ZCTYX {_shape(before)} -> {_shape(after)}"
    if before.get("dtype") != after.get("dtype"):
        return f"pixel type differs: {before.get('dtype')} -> {after.get('dtype')}"
    old, new = before.get("plane_digests"), after.get("plane_digests")
    if old is None or new is None:
        return "planes not known (no plane digests recorded before)"
    if len(old) != len(new) or len(new) % DIGEST_BYTES:  # never a failed merge
        return "planes not known (plane digests of other plane counts)"
    offsets = differing_planes(old, new)
    total = len(new) // DIGEST_BYTES
    return describe_planes(offsets, total, int(after["size_c"]), int(after["size_t"]))


def image_difference(before: Sequence[Mapping], after: Sequence[Mapping]) -> str:
    """Per scene whose code changed, :func:`scene_difference`, joined with
    `` | ``; a scene gone or new is said so. Scenes are named (``scene 1:``)
    only when the image has more than one."""
    old = {s["scene_index"]: s for s in before}
    new = {s["scene_index"]: s for s in after}
    named = len(old) > 1 or len(new) > 1
    out = []
    for index in sorted(set(old) | set(new)):
        prefix = f"scene {index}: " if named else ""
        if index not in new:
            out.append(f"scene {index} gone")
        elif index not in old:
            out.append(f"scene {index} new")
        elif old[index].get("iscc_code") != new[index].get("iscc_code"):
            if (
                old[index].get("iscc_code") is None
                or new[index].get("iscc_code") is None
            ):
                continue  # a field without a code: not a pixel change to locate
            out.append(prefix + scene_difference(old[index], new[index]))
    return " | ".join(out)
