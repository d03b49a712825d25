"""Fingerprint one shard of the manifest on dask workers, into shard tables.

One dask task per image: an image's failure becomes rows in ``errors`` and
``status=error``, never an exception that stops the shard. Shard tables carry
no run id; the merge stamps it, so a shard's tables depend only on its images.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from biocodes.catalogue import TABLES, to_table, write_atomic
from biocodes.views import ViewOptions


def _worker() -> tuple[str, str | None]:
    return socket.gethostname(), os.environ.get("SLURM_JOB_ID")


def fingerprint_image(
    row: Mapping[str, Any],
    simprints: bool,
    views: ViewOptions | None = None,
    results_dir: str | None = None,
) -> dict:
    """All catalogue rows for one manifest row.

    With views, thumbnails go to ``<views.thumbnails>/<image_id>/`` and the
    ``thumbnail`` column holds their path relative to ``results_dir``.
    """
    from biocodes.errors import as_biocode_error
    from biocodes.fingerprint import biocode
    from biocodes.imagewalk import plane_position

    if views is not None and views.thumbnails is not None:
        views = replace(views, thumbnails=f"{views.thumbnails}/{row['image_id']}")

    host, job = _worker()
    image = {k: row[k] for k in ("image_id", "root", "path", "size", "mtime_ns")}
    image.update(worker=host, slurm_job_id=job)
    out: dict[str, list[dict]] = {name: [] for name in TABLES}
    try:
        result = biocode(row["abspath"], simprints=simprints, views=views)
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


def run_shard(
    manifest: str | os.PathLike,
    shard: int,
    out_dir: str | os.PathLike,
    cluster: Mapping[str, Any],
    simprints: bool,
    threads: int = 1,
    views: ViewOptions | None = None,
    results_dir: str | None = None,
) -> dict[str, int]:
    """Fingerprint every image of ``shard`` and write its tables under ``out_dir``."""
    import pyarrow.parquet as pq
    from distributed import as_completed

    from biocodes.cluster import dask_client

    rows = pq.read_table(manifest, filters=[("shard", "=", shard)]).to_pylist()
    tables: dict[str, list[dict]] = {name: [] for name in TABLES}
    if rows:
        with dask_client(cluster, threads) as client:
            futures = [
                client.submit(
                    fingerprint_image,
                    r,
                    simprints,
                    views,
                    results_dir,
                    key=f"image-{r['image_id']}",
                    pure=False,
                )
                for r in rows
            ]
            for future in as_completed(futures):
                for name, items in future.result().items():
                    tables[name].extend(items)
                future.release()
    out = Path(out_dir)
    for name in TABLES:
        if name != "runs":
            write_atomic(to_table(name, tables[name]), out / f"{name}.parquet")
    return {name: len(items) for name, items in tables.items()}


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
