"""Exact and near duplicates among catalogue scenes, and "what is like this?".

Exact duplicates share the per-scene ISCC-SUM (identical pixels). Near
duplicates are within a Hamming distance on the Data-Code (similar bytes) or on
ISCC-MIXED (similar looks, with views on). Near pairs are found without
comparing all pairs: a code cut into ``d + 1`` bands has at least one band
identical with any code within ``d`` bits (pigeonhole), so only codes sharing a
band are compared.
"""

from __future__ import annotations

import os
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
        for group in _components(len(have), near_pairs(bits, limit)):
            members = [have[i] for i in group]
            if len({m["iscc_code"] for m in members}) < 2:
                continue  # identical pixels only: already an exact group
            first = bits[group[0]][0]
            dist = [(bits[i][0] ^ first).bit_count() for i in group]
            emit(kind, members, [m[column] for m in members], dist)
    return rows


def _kind_of(code: str) -> str:
    """Which catalogue column a code is compared with."""
    import iscc_core as ic

    mt, st, *_ = ic.iscc_decode(code)
    if mt == ic.MT.ISCC:
        return "iscc_code"
    if mt == ic.MT.DATA:
        return "data_code"
    if mt == ic.MT.CONTENT and st == ic.ST_CC.MIXED:
        return "iscc_mixed"
    if mt == ic.MT.CONTENT and st == ic.ST_CC.IMAGE:
        return "iscc_image"
    raise ValueError(
        f"{code}: not a scene ISCC-SUM, Data-Code, ISCC-MIXED or ISCC-IMAGE"
    )


DEFAULT_DISTANCE = {"iscc_code": 0, "data_code": 24, "iscc_mixed": 8, "iscc_image": 8}


def similar(
    catalogue_dir: str | os.PathLike,
    query: str,
    max_distance: int | None = None,
) -> list[dict]:
    """Catalogue scenes like ``query`` (an image path or a code), nearest first.

    A path is fingerprinted (with views if the catalogue has them) and each of
    its scenes is compared by ISCC-SUM (identical pixels), Data-Code,
    ISCC-MIXED and, view by view, ISCC-IMAGE. A code is compared with the
    column of its type. Only the catalogue is read, never the repository.
    """
    from biocodes.catalogue import read_catalogue

    scenes = [s for s in read_catalogue(catalogue_dir, "scenes") if s["status"] == "ok"]
    probes: list[tuple[str, str, str]] = []  # (query label, column, code)
    if query.upper().startswith("ISCC:") and not os.path.exists(query):
        probes.append((query, _kind_of(query), query))
    else:
        import json

        from biocodes.fingerprint import biocode
        from biocodes.shard import view_options

        # the catalogue's own view settings, so ISCC-MIXED codes are comparable
        runs = read_catalogue(catalogue_dir, "runs")
        config = json.loads(runs[-1].get("config") or "{}") if runs else {}
        views = None
        if any(s.get("iscc_mixed") for s in scenes):
            views = view_options(config.get("views") or {}, None)
        result = biocode(query, views=views)
        for p in result["parts"]:
            label = f"scene {p['scene_index']}"
            probes.append((label, "iscc_code", p["iscc_code"]))
            probes.append((label, "data_code", p["units"][0]))
            if p.get("iscc_mixed"):
                probes.append((label, "iscc_mixed", p["iscc_mixed"]))
            # each view against the catalogue's view codes: a lossy copy (a
            # JPEG of a PNG) can be near one view while its mixed code is not
            for v in p.get("views", []):
                probes.append((label, "iscc_image", v["iscc_image"]))
    candidates = {"iscc_image": read_catalogue(catalogue_dir, "views")}
    by_scene = {(s["image_id"], s["scene_index"]): s for s in scenes}
    best: dict[tuple, dict] = {}
    for label, column, code in probes:
        limit = DEFAULT_DISTANCE[column] if max_distance is None else max_distance
        if column == "iscc_code":
            limit = 0
        value, bits = code_bits(code) if column != "iscc_code" else (0, 0)
        for row in candidates.get(column, scenes):
            other = row.get(column)
            if not other:
                continue
            if column == "iscc_code":
                d = 0 if other == code else None
            else:
                ov, ob = code_bits(other)
                d = (ov ^ value).bit_count() if ob == bits else None
            if d is None or d > limit:
                continue
            scene = by_scene.get((row["image_id"], row["scene_index"]))
            if scene is None:
                continue
            key = (label, scene["image_id"], scene["scene_index"])
            match = {
                "query": label,
                "match": "identical" if column == "iscc_code" else column,
                "distance": d,
                "path": scene["path"],
                "image_id": scene["image_id"],
                "scene_index": scene["scene_index"],
                "code": other,
            }
            rank = (d, column != "iscc_code")
            if key not in best or rank < (
                best[key]["distance"],
                best[key]["match"] != "identical",
            ):
                best[key] = match
    return sorted(
        best.values(),
        key=lambda m: (m["query"], m["distance"], m["path"], m["scene_index"]),
    )
