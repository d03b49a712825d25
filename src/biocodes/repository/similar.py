"""``biocodes similar``: catalogue scenes like an image or a code, nearest
first. Only the catalogue is read, never the repository."""

from __future__ import annotations

import os


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
DEFAULT_DISTANCE["plane_image"] = 8


def picture_code(path: str | os.PathLike) -> str | None:
    """The ISCC-IMAGE of a 2D picture (PNG, JPEG, a one-plane TIFF), made as
    the catalogue's plane images are (:func:`~biocodes.views.build.plane_code`):
    its one plane, or the luma (ITU-R 601-2) of its first three samples for
    RGB(A). None for anything with more planes: a stack is not a picture."""
    import numpy as np

    from biocodes.sources import open_source
    from biocodes.views.build import plane_code

    with open_source(path) as source:
        if len(source.scenes) != 1:
            return None
        scene = source.scenes[0]
        if scene.size_z * scene.size_t != 1:
            return None
        if scene.size_c == 1:
            gray = source.read_plane(scene, 0, 0, 0)
        elif scene.samples in (3, 4) and scene.size_c == scene.samples:
            r, g, b = (
                source.read_plane(scene, 0, c, 0).astype(np.float64) for c in range(3)
            )
            gray = 0.299 * r + 0.587 * g + 0.114 * b
        else:
            return None
    return plane_code(gray)


def part_probes(parts: list[dict]) -> list[tuple[str, str, str]]:
    """(label, catalogue column, code) to search for each scene of a query
    image (``biocode()``'s parts): its ISCC-SUM, Data-Code, ISCC-MIXED and
    each view's ISCC-IMAGE (a lossy copy, a JPEG of a PNG, can be near one
    view while its mixed code is not)."""
    probes = []
    for p in parts:
        label = f"scene {p['scene_index']}"
        probes.append((label, "iscc_code", p["iscc_code"]))
        probes.append((label, "data_code", p["units"][0]))
        if p.get("iscc_mixed"):
            probes.append((label, "iscc_mixed", p["iscc_mixed"]))
        for v in p.get("views", []):
            probes.append((label, "iscc_image", v["iscc_image"]))
    return probes


def similar(
    catalogue_dir: str | os.PathLike,
    query: str,
    max_distance: int | None = None,
) -> list[dict]:
    """Catalogue scenes like ``query`` (an image path or a code), nearest first.

    A path is fingerprinted (with views if the catalogue has them) and each of
    its scenes is compared by ISCC-SUM (identical pixels), Data-Code,
    ISCC-MIXED and, view by view, ISCC-IMAGE; a picture is also compared
    with the catalogue's plane images (``views.plane_images``), and such a
    match names the plane (``z``, ``c``, ``t``) too. A code is compared with
    the column of its type. Only the catalogue's code index is read (see
    :mod:`biocodes.repository.codeindex`), never the repository.
    """
    from biocodes.repository import codeindex
    from biocodes.repository.tables import read_catalogue

    probes: list[tuple[str, str, str]] = []  # (query label, column, code)
    from biocodes.infra.remote import is_remote

    if not os.path.exists(query) and not is_remote(query):
        # a code, with or without its ISCC: prefix; anything else is refused
        # here, not taken for a file that is not there
        code = query if query.upper().startswith("ISCC:") else f"ISCC:{query}"
        try:
            kind = _kind_of(code)
        except ValueError as exc:
            if code is query and "not a scene" in str(exc):
                raise
            raise ValueError(
                f"{query}: no such file, and not an ISCC code (a code looks "
                "like ISCC:KACT...)"
            ) from None
        except Exception:
            raise ValueError(
                f"{query}: no such file, and not an ISCC code (a code looks "
                "like ISCC:KACT...)"
            ) from None
        probes.append((code, kind, code))
    else:
        import json

        from biocodes.core.fingerprint import biocode
        from biocodes.views.build import view_options

        # the catalogue's own view settings, so ISCC-MIXED codes are comparable
        runs = read_catalogue(catalogue_dir, "runs")
        config = json.loads(runs[-1].get("config") or "{}") if runs else {}
        views = None
        if codeindex.has_codes(catalogue_dir, "iscc_mixed"):
            views = view_options(config.get("views") or {}, None)
        result = biocode(query, views=views)
        probes += part_probes(result["parts"])
        if len(result["parts"]) == 1 and codeindex.has_codes(
            catalogue_dir, "plane_image"
        ):
            if (code := picture_code(query)) is not None:
                probes.append(("scene 0", "plane_image", code))
    parts: dict[str, list] = {}  # each column's index, opened once
    best: dict[tuple, dict] = {}
    for label, column, code in probes:
        limit = DEFAULT_DISTANCE[column] if max_distance is None else max_distance
        if column == "iscc_code":
            limit = 0
        if column not in parts:
            parts[column] = codeindex.open_parts(catalogue_dir, column)
        for row in codeindex.search(
            catalogue_dir, column, code, limit, parts=parts[column]
        ):
            d = row["distance"]
            key = (label, row["image_id"], row["scene_index"])
            match = {
                "query": label,
                "match": "identical" if column == "iscc_code" else column,
                "distance": d,
                "path": row["path"],
                "image_id": row["image_id"],
                "scene_index": row["scene_index"],
                "code": row["code"],
            }
            if column == "plane_image":  # where in the scene
                match.update(z=row["z"], c=row["c"], t=row["t"])
            rank = (d, column != "iscc_code", column != "plane_image")
            if key not in best or rank < (
                best[key]["distance"],
                best[key]["match"] != "identical",
                best[key]["match"] != "plane_image",
            ):
                best[key] = match
    return sorted(
        best.values(),
        key=lambda m: (m["query"], m["distance"], m["path"], m["scene_index"]),
    )
