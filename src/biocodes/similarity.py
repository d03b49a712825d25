"""Exact and near duplicates among catalogue scenes, and "what is like this?".

Exact duplicates share the per-scene ISCC-SUM (identical pixels). Near
duplicates are within a Hamming distance on the Data-Code (similar bytes) or on
ISCC-MIXED (similar looks, with views on). Near pairs are found without
comparing all pairs: a code cut into ``d + 1`` bands has at least one band
identical with any code within ``d`` bits (pigeonhole), so only codes sharing a
band are compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def code_bits(code: str) -> tuple[int, int]:
    """(body as int, bit length) of an ISCC unit such as a Data-Code."""
    import iscc_core as ic

    _mt, _st, _vs, _ln, body = ic.iscc_decode(code)
    return int.from_bytes(body, "big"), len(body) * 8


def near_pairs(
    codes: Sequence[tuple[int, int]], max_distance: int
) -> list[tuple[int, int, int]]:
    """(i, j, distance) for all i < j whose codes are within ``max_distance``
    bits (codes of one length; distance 0 included)."""
    if not codes or max_distance < 0:
        return []
    bits = codes[0][1]
    bands = min(max_distance + 1, bits)
    edges = [bits * k // bands for k in range(bands + 1)]
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, (value, _) in enumerate(codes):
        for b in range(bands):
            width = edges[b + 1] - edges[b]
            key = (b, (value >> edges[b]) & ((1 << width) - 1))
            buckets.setdefault(key, []).append(i)
    found: dict[tuple[int, int], int] = {}
    for members in buckets.values():
        for x, i in enumerate(members):
            for j in members[x + 1 :]:
                if (i, j) not in found:
                    d = (codes[i][0] ^ codes[j][0]).bit_count()
                    if d <= max_distance:
                        found[(i, j)] = d
    return sorted((i, j, d) for (i, j), d in found.items())


def _components(n: int, pairs: Iterable[tuple[int, int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def duplicate_rows(
    scenes: list[dict],
    images: list[dict],
    data_distance: int = 24,
    mixed_distance: int = 8,
) -> list[dict]:
    """Rows of the ``duplicates`` table: one per scene per group.

    ``exact`` groups share the scene ISCC-SUM; ``near_data`` and ``near_mixed``
    groups are connected by Data-Code or ISCC-MIXED distances within the
    thresholds. A group spans at least two files; ``distance`` is to the
    group's first member (sorted by path).
    """
    info = {i["image_id"]: i for i in images}
    live = [s for s in scenes if s["status"] == "ok" and s.get("iscc_code")]
    live.sort(key=lambda s: (info[s["image_id"]]["root"], s["path"], s["scene_index"]))
    rows: list[dict] = []

    def emit(kind: str, members: list[dict], codes: list[str], dist: list[int]) -> None:
        if len({m["image_id"] for m in members}) < 2:
            return
        group = f"{kind}:{codes[0]}"
        for m, code, d in zip(members, codes, dist):
            rows.append(
                {
                    "kind": kind,
                    "group_id": group,
                    "image_id": m["image_id"],
                    "root": info[m["image_id"]]["root"],
                    "path": m["path"],
                    "scene_index": m["scene_index"],
                    "format": info[m["image_id"]].get("format"),
                    "code": code,
                    "distance": d,
                }
            )

    exact: dict[str, list[dict]] = {}
    for s in live:
        exact.setdefault(s["iscc_code"], []).append(s)
    for code, members in exact.items():
        emit("exact", members, [code] * len(members), [0] * len(members))

    for kind, column, limit in (
        ("near_data", "data_code", data_distance),
        ("near_mixed", "iscc_mixed", mixed_distance),
    ):
        have = [s for s in live if s.get(column)]
        bits = [code_bits(s[column]) for s in have]
        pairs = [(i, j, d) for i, j, d in near_pairs(bits, limit)]
        for group in _components(len(have), pairs):
            members = [have[i] for i in group]
            if len({m["iscc_code"] for m in members}) < 2:
                continue  # identical pixels only: already an exact group
            first = bits[group[0]][0]
            dist = [(bits[i][0] ^ first).bit_count() for i in group]
            emit(kind, members, [m[column] for m in members], dist)
    return rows
