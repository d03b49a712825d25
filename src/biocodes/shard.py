"""Fingerprint one shard of the manifest on dask workers, incrementally.

Each shard keeps its last tables in ``<results>/state/<shard>`` (swapped in
atomically). A run reads pixels only for images that are new, failed last
time, were computed with other settings or code versions, or whose file
changed; an image whose size and mtime are unchanged keeps its rows without
being opened. When only the mtime changed (or ``recheck`` is on) the raw-file
ISCC-SUM decides: equal bytes keep the rows, other bytes are read again.

One dask task per image: an image's failure becomes rows in ``errors`` and
``status=error``, never an exception that stops the shard.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from biocodes.catalogue import SCHEMAS, SHARD_TABLES, to_table, write_atomic
from biocodes.views import ViewOptions


def _worker() -> tuple[str, str | None]:
    return socket.gethostname(), os.environ.get("SLURM_JOB_ID")


def settings_key(simprints: bool, views: ViewOptions | None) -> str:
    """Hash of everything that decides an image's rows besides its bytes:
    the options and the versions of every package that can change a code."""
    import hashlib

    from biocodes.catalogue import code_versions
    from biocodes.imagewalk import SPEC_VERSION

    opts = None if views is None else asdict(views)
    if opts is not None:
        opts["thumbnails"] = views.thumbnails is not None
    key = {
        "simprints": simprints,
        "views": opts,
        "versions": code_versions(),
        "spec": SPEC_VERSION,
    }
    text = json.dumps(key, sort_keys=True).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def fingerprint_image(
    row: Mapping[str, Any],
    simprints: bool,
    views: ViewOptions | None = None,
    results_dir: str | None = None,
    raw: dict | None = None,
) -> dict:
    """All catalogue rows for one manifest row (``raw``: its raw-file code,
    if the caller has just computed it).

    With views, thumbnails go to ``<views.thumbnails>/<id[:2]>/<id>/`` and the
    ``thumbnail`` column holds their path relative to ``results_dir``.
    """
    from biocodes.errors import as_biocode_error
    from biocodes.fingerprint import biocode
    from biocodes.imagewalk import plane_position

    iid = row["image_id"]
    if views is not None and views.thumbnails is not None:
        views = replace(views, thumbnails=f"{views.thumbnails}/{iid[:2]}/{iid}")

    host, job = _worker()
    image = {k: row[k] for k in ("image_id", "root", "path", "size", "mtime_ns")}
    image.update(worker=host, slurm_job_id=job)
    out: dict[str, list[dict]] = {name: [] for name in SHARD_TABLES}
    try:
        result = biocode(row["abspath"], simprints=simprints, views=views, raw=raw)
    except Exception as exc:  # every failure becomes an error row
        exc = as_biocode_error(row["abspath"], exc)
        message = str(exc).replace(row["abspath"], row["path"])
        image.update(status="error", error=message, scene_count=0)
        out["errors"].append(
            {
                "image_id": row["image_id"],
                "path": row["path"],
                "scene_index": None,
                "stage": exc.stage,
                "error_type": exc.kind,
                "message": message,
            }
        )
        out["images"].append(image)
        return out
    parts = result["parts"]
    image.update(
        status="ok" if parts else "empty",
        error=None,
        scene_count=len(parts),
        iscc_code=result["iscc_code"],
        datahash=result["datahash"],
        format=result["format"],
    )
    out["images"].append(image)
    for p in parts:
        d = p["dims"]
        out["scenes"].append(
            {
                "image_id": row["image_id"],
                "path": row["path"],
                "scene_index": p["scene_index"],
                "scene_name": p["scene_name"],
                "size_t": d["T"],
                "size_c": d["C"],
                "size_z": d["Z"],
                "size_y": d["Y"],
                "size_x": d["X"],
                "dtype": p["dtype"],
                "planes": p["planes"],
                "nbytes": p["nbytes"],
                "iscc_code": p["iscc_code"],
                "data_code": p["units"][0],
                "instance_code": p["units"][1],
                "iscc_mixed": p.get("iscc_mixed"),
                "status": "ok",
                "error": None,
            }
        )
        for v in p.get("views", []):
            thumb = v.get("thumbnail")
            out["views"].append(
                {
                    "image_id": row["image_id"],
                    "scene_index": p["scene_index"],
                    **v,
                    "thumbnail": thumb and os.path.relpath(thumb, results_dir or "."),
                }
            )
        for s in p.get("simprints", {}).get("DATA_NONE_V0", []):
            z, c, t = plane_position(s["offset"], d["C"], d["T"])
            out["simprints"].append(
                {
                    "image_id": row["image_id"],
                    "scene_index": p["scene_index"],
                    "offset": s["offset"],
                    "z": z,
                    "c": c,
                    "t": t,
                    "simprint": s["simprint"],
                    "size": s["size"],
                }
            )
    return out


def _rehash_or_fingerprint(
    row: Mapping[str, Any],
    previous_code: str,
    simprints: bool,
    views: ViewOptions | None,
    results_dir: str | None,
) -> dict | None:
    """None if the file's bytes still have ``previous_code``, else its new rows."""
    from biocodes.codes import raw_file_code

    try:
        raw = raw_file_code(row["abspath"])
    except Exception:  # unreadable now: the full read reports why
        raw = None
    if raw is not None and raw["iscc_code"] == previous_code:
        return None
    return fingerprint_image(row, simprints, views, results_dir, raw)


def _previous(state_dir: Path) -> dict[str, dict[str, list[dict]]]:
    """The shard's last rows, by table and image id."""
    import pyarrow.parquet as pq

    found: dict[str, dict[str, list[dict]]] = {n: {} for n in SHARD_TABLES}
    for name in SHARD_TABLES:
        path = state_dir / f"{name}.parquet"
        if path.exists():
            for r in pq.read_table(path).to_pylist():
                found[name].setdefault(r["image_id"], []).append(r)
    return found


def run_shard(
    manifest: str | os.PathLike,
    shard: int,
    state_dir: str | os.PathLike,
    cluster: Mapping[str, Any],
    simprints: bool,
    threads: int = 1,
    views: ViewOptions | None = None,
    results_dir: str | None = None,
    recheck: bool = False,
) -> dict[str, int]:
    """Bring the shard's tables under ``state_dir`` up to date with the manifest.

    Returns counts: ``images``, ``read`` (pixels read), ``rehashed`` (raw
    bytes hashed, rows kept if equal) and ``reused`` (not opened at all).
    """
    import pyarrow.parquet as pq
    from distributed import as_completed

    from biocodes.atomic import atomic_dir
    from biocodes.cluster import dask_client

    manifest_table = pq.read_table(manifest, filters=[("shard", "=", shard)])
    run_id = (manifest_table.schema.metadata or {}).get(b"run_id", b"").decode()
    rows = manifest_table.to_pylist()
    key = settings_key(simprints, views)
    before = _previous(Path(state_dir))
    tables: dict[str, list[dict]] = {name: [] for name in SHARD_TABLES}
    counts = {"images": len(rows), "read": 0, "rehashed": 0, "reused": 0}

    def keep(row: Mapping[str, Any]) -> None:
        """The image's previous rows, with its current size and mtime."""
        for name in SHARD_TABLES:
            for r in before[name].get(row["image_id"], []):
                if name == "images":
                    r = {**r, "size": row["size"], "mtime_ns": row["mtime_ns"]}
                tables[name].append(r)

    def take(result: dict) -> None:
        for name, items in result.items():
            for r in items:
                if name == "images":
                    r["settings_key"] = key
                if "run_id" in SCHEMAS[name].names:
                    r["run_id"] = run_id
                tables[name].append(r)

    work = []  # (row, previous raw code or None for a full read)
    for row in rows:
        prev = before["images"].get(row["image_id"], [None])[0]
        same_file = prev is not None and prev["size"] == row["size"]
        usable = same_file and prev["status"] in ("ok", "empty")
        usable = usable and prev.get("settings_key") == key
        if usable and prev["mtime_ns"] == row["mtime_ns"] and not recheck:
            keep(row)
            counts["reused"] += 1
        elif usable and prev["iscc_code"]:
            work.append((row, prev["iscc_code"]))
        else:
            work.append((row, None))
    if work:
        with dask_client(cluster, threads) as client:
            futures = {}
            for row, code in work:
                if code is None:
                    args = (fingerprint_image, row, simprints, views, results_dir)
                else:
                    args = (_rehash_or_fingerprint, row, code, simprints, views)
                    args += (results_dir,)
                f = client.submit(*args, key=f"image-{row['image_id']}", pure=False)
                futures[f] = (row, code)
            for future in as_completed(futures):
                row, code = futures[future]
                result = future.result()
                counts["rehashed"] += code is not None
                if result is None:
                    keep(row)
                else:
                    take(result)
                    counts["read"] += 1
                future.release()
    with atomic_dir(state_dir) as new:
        for name in SHARD_TABLES:
            write_atomic(to_table(name, tables[name]), new / f"{name}.parquet")
    return counts


def view_options(
    config: Mapping[str, Any] | None, thumbnails_dir: str | None
) -> ViewOptions | None:
    """ViewOptions from the workflow's ``views`` config (None when disabled);
    missing keys take the library defaults."""
    config = dict(config or {})
    if not config.pop("enabled", True):
        return None
    thumbs = config.pop("thumbnails", True)
    config["strategies"] = tuple(config.get("strategies", ViewOptions.strategies))
    return ViewOptions(**config, thumbnails=thumbnails_dir if thumbs else None)
