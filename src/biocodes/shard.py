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

import pyarrow as pa
import pyarrow.compute as pc

from biocodes.catalogue import SCHEMAS, SHARD_TABLES, to_table, write_atomic
from biocodes.errors import BiocodeError, ChangedError, display_path
from biocodes.limits import Limits
from biocodes.views import ViewOptions


def _image_row(row: Mapping[str, Any]) -> dict:
    """The ``images`` columns every outcome shares: the file and who read it."""
    image = {k: row[k] for k in ("image_id", "root", "path", "size", "mtime_ns")}
    image.update(
        worker=socket.gethostname(), slurm_job_id=os.environ.get("SLURM_JOB_ID")
    )
    return image


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
    limits: Limits | None = None,
) -> dict:
    """All catalogue rows for one manifest row (``raw``: its raw-file code,
    if the caller has just computed it).

    A row the scan refused (``error``) becomes its error rows unread. A file
    whose size or mtime differs from the scan's has changed since: it is an
    error (``changed_during_read``) this run and is read again next run.

    With views, thumbnails go to ``<views.thumbnails>/<id[:2]>/<id>/`` and the
    ``thumbnail`` column holds their path relative to ``results_dir``.
    """
    from biocodes.errors import as_biocode_error
    from biocodes.fingerprint import biocode
    from biocodes.imagewalk import plane_position

    iid = row["image_id"]
    if views is not None and views.thumbnails is not None:
        views = replace(views, thumbnails=f"{views.thumbnails}/{iid[:2]}/{iid}")

    try:
        if row.get("error"):
            raise ScanError(row)
        now = _unchanged_since_scan(row, limits)
        result = biocode(
            row["abspath"],
            simprints=simprints,
            views=views,
            raw=raw,
            limits=limits,
            before=now,
        )
    except Exception as exc:  # every failure becomes an error row
        return error_rows(row, as_biocode_error(row["abspath"], exc))
    parts = result["parts"]
    image = _image_row(row)
    out: dict[str, list[dict]] = {name: [] for name in SHARD_TABLES}
    image.update(
        status="ok" if parts else "empty",
        error=None,
        scene_count=len(parts),
        iscc_code=result["iscc_code"],
        datahash=result["datahash"],
        format=result["format"],
        note=result.get("note"),
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
                "codec": p.get("codec"),
                "decoder": p.get("decoder"),
                "lossy": p.get("lossy"),
                "planes": p["planes"],
                "nbytes": p["nbytes"],
                "iscc_code": p["iscc_code"],
                "data_code": p["units"][0],
                "instance_code": p["units"][1],
                "iscc_mixed": p.get("iscc_mixed"),
                "status": "ok",
                "error": None,
                **scene_metadata_columns(p.get("metadata") or {}),
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


def scene_metadata_columns(meta: Mapping[str, Any]) -> dict:
    """The scenes table's metadata columns (null where the reader says
    nothing)."""
    from biocodes.sources.metadata import FIELDS

    return {k: meta.get(k) for k in FIELDS}


class ScanError(BiocodeError):
    """The scan's verdict on a manifest row, carried to the catalogue."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        super().__init__(row["path"], "", stage="scan")
        self.kind = row["error_type"] or "error"
        self.args = (row["error"],)

    def __str__(self) -> str:
        return self.args[0]


def _unchanged_since_scan(
    row: Mapping[str, Any], limits: Limits | None
) -> tuple[int, int] | None:
    """The file's state now, if it is the scan's; raise if it differs."""
    from biocodes.manifest import file_state

    try:
        now = file_state(row["abspath"], limits)
    except (OSError, BiocodeError):
        return None  # gone or unreadable: opening it says why
    if now != (row["size"], row["mtime_ns"]):
        raise ChangedError(
            row["abspath"],
            f"changed since the scan (size, mtime {row['size']}, "
            f"{row['mtime_ns']} -> {now[0]}, {now[1]}); not stored, read again "
            "next run",
        )
    return now


def error_rows(row: Mapping[str, Any], exc: BiocodeError) -> dict:
    """The images and errors rows of an image that failed: no codes at all."""
    message = str(exc).replace(display_path(row["abspath"]), row["path"])
    image = _image_row(row)
    image.update(status="error", error=message, scene_count=0)
    out: dict[str, list[dict]] = {name: [] for name in SHARD_TABLES}
    out["images"].append(image)
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
    return out


def _rehash_or_fingerprint(
    row: Mapping[str, Any],
    previous_code: str,
    simprints: bool,
    views: ViewOptions | None,
    results_dir: str | None,
    limits: Limits | None = None,
) -> dict | None:
    """None if the file's bytes still have ``previous_code``, else its new rows."""
    from biocodes.codes import raw_file_code

    try:
        raw = raw_file_code(row["abspath"], limits=limits)
    except Exception:  # unreadable now: the full read reports why
        raw = None
    if raw is not None and raw["iscc_code"] == previous_code:
        return None
    return fingerprint_image(row, simprints, views, results_dir, raw, limits)


def _died(client: Any, exc: Exception, row: Mapping[str, Any]) -> BiocodeError:
    """Why every worker that held an image died: its memory limit (the nanny
    logs a ``worker-restart-memory`` event) or something else (SIGKILL,
    walltime, the kernel's OOM killer)."""
    import time

    from dask.utils import format_bytes

    from biocodes.errors import OutOfMemoryError, WorkerDiedError

    worker = exc.last_worker
    tries = exc.allowed_failures + 1
    for _ in range(20):  # the nanny's event may trail the worker's death
        events = client.get_events("worker-restart-memory")
        if any(e.get("worker") == worker.address for _, e in events):
            limit = format_bytes(worker.memory_limit or 0)
            return OutOfMemoryError(
                row["abspath"],
                f"the worker exceeded its memory limit ({limit}) on this image, "
                f"{tries} times; give workers more memory (cluster.memory_limit, "
                "cluster.slurm.memory) or lower limits.max_plane_bytes",
                stage="worker",
            )
        time.sleep(0.1)
    return WorkerDiedError(
        row["abspath"],
        f"{tries} workers died while processing this image (killed: SIGKILL, "
        "walltime or the system's OOM killer); read again next run",
        stage="worker",
    )


def _previous(
    state_dir: Path,
    ids: pa.Array,
    shards: int | None,
    catalogue: str | os.PathLike | None,
) -> tuple[dict[str, pa.Table], bool]:
    """The shard's last tables, and whether they are its own.

    A state written for another shard count (or none yet) does not hold this
    shard's images: they come from the previous catalogue instead, which holds
    every image's rows, so changing the number of shards reads no pixels."""
    from biocodes.catalogue import read_table

    layout = state_dir / "layout.json"
    own = shards is None or (
        layout.exists() and json.loads(layout.read_text()).get("shards") == shards
    )
    source = state_dir
    if not own and catalogue is not None and Path(catalogue, "images.parquet").exists():
        source = Path(catalogue)
    found = {}
    for name in SHARD_TABLES:
        table = read_table(source / f"{name}.parquet", name)
        if source != state_dir:
            table = table.filter(pc.is_in(table["image_id"], ids))
        found[name] = table
    if source != state_dir:  # removed images are not this run's to keep
        images = found["images"]
        found["images"] = images.filter(pc.not_equal(images["status"], "removed"))
    return found, own


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
    limits: Limits | None = None,
    shards: int | None = None,
    catalogue: str | os.PathLike | None = None,
) -> dict[str, int]:
    """Bring the shard's tables under ``state_dir`` up to date with the manifest.

    Which images to read is decided on Arrow columns (a join of the manifest
    with the shard's last tables), so an unchanged image costs no Python, and
    a shard where nothing changed keeps its state files untouched. With
    ``shards`` (the run's shard count) and ``catalogue``, a state written for
    another count is replaced by the catalogue's rows (see :func:`_previous`).

    Returns counts: ``images``, ``read`` (pixels read), ``rehashed`` (raw
    bytes hashed, rows kept if equal) and ``reused`` (not opened at all).
    """
    import pyarrow.parquet as pq

    from biocodes.atomic import atomic_dir
    from biocodes.catalogue import sort_table

    state_dir = Path(state_dir)
    run_id = (pq.read_schema(manifest).metadata or {}).get(b"run_id", b"").decode()
    rows = pq.read_table(manifest, filters=[("shard", "=", shard)])
    key = settings_key(simprints, views)
    before, own = _previous(state_dir, rows["image_id"], shards, catalogue)
    prev = before["images"].select(
        [
            "image_id",
            "size",
            "mtime_ns",
            "status",
            "settings_key",
            "run_id",
            "iscc_code",
        ]
    )
    prev = prev.rename_columns(
        ["image_id", "_size", "_mtime", "_status", "_key", "_run", "_code"]
    )
    t = rows.join(prev, "image_id", join_type="left outer")
    usable = pc.and_(
        pc.and_(
            pc.equal(t["_size"], t["size"]),
            pc.is_in(t["_status"], pa.array(["ok", "empty"])),
        ),
        pc.and_(pc.equal(t["_key"], key), pc.is_null(t["error"])),
    ).fill_null(False)
    unchanged = pc.and_(
        pc.equal(t["_mtime"], t["mtime_ns"]), pc.greater_equal(t["mtime_ns"], 0)
    ).fill_null(False)
    keep = pc.and_(pc.and_(usable, unchanged), pa.scalar(not recheck))
    rehash = pc.and_(pc.invert(keep), pc.and_(usable, pc.is_valid(t["_code"])))
    kept_now = t.filter(keep)
    again = int(pc.sum(pc.equal(kept_now["_run"], run_id)).as_py() or 0)
    counts = {
        "images": t.num_rows,
        "read": again,  # read by an earlier, interrupted attempt at this run
        "rehashed": 0,
        "reused": kept_now.num_rows - again,
    }
    todo = t.filter(pc.invert(keep))
    codes = pc.if_else(rehash, t["_code"], pa.scalar(None, pa.string()))
    work = []  # (row, previous raw code or None for a full read)
    for row, code in zip(
        todo.select(rows.column_names).to_pylist(),
        codes.filter(pc.invert(keep)).to_pylist(),
        strict=True,
    ):
        row["abspath"] = os.fsdecode(row["abspath"])
        work.append((row, code))
    results: dict[str, list[dict]] = {name: [] for name in SHARD_TABLES}

    def take(result: dict) -> None:
        for name, items in result.items():
            for r in items:
                if name == "images":
                    r["settings_key"] = key
                if "run_id" in SCHEMAS[name].names:
                    r["run_id"] = run_id
                results[name].append(r)

    kept_after = []
    if work:  # dask only when there is work: a quiet shard starts in a blink
        from distributed import KilledWorker, as_completed

        from biocodes.cluster import dask_client

        with dask_client(cluster, threads) as client:
            futures = {}
            for row, code in work:
                if code is None:
                    args = (fingerprint_image, row, simprints, views, results_dir)
                    args += (None, limits)
                else:
                    args = (_rehash_or_fingerprint, row, code, simprints, views)
                    args += (results_dir, limits)
                f = client.submit(*args, key=f"image-{row['image_id']}", pure=False)
                futures[f] = (row, code)
            for future in as_completed(futures):
                row, code = futures[future]
                try:
                    result = future.result()
                except KilledWorker as exc:
                    result = error_rows(row, _died(client, exc, row))
                counts["rehashed"] += code is not None
                if result is None:
                    kept_after.append(row["image_id"])
                else:
                    take(result)
                    counts["read"] += 1
                future.release()
    kept = pa.chunked_array(
        [kept_now["image_id"].combine_chunks(), pa.array(kept_after, pa.string())]
    )
    sizes = rows.select(["image_id", "size", "mtime_ns"])
    tables = {}
    for name in SHARD_TABLES:
        table = before[name].filter(pc.is_in(before[name]["image_id"], kept))
        if name == "images":  # the image's current size and mtime
            table = table.drop_columns(["size", "mtime_ns"]).join(
                sizes, "image_id", join_type="inner"
            )
        tables[name] = pa.concat_tables(
            [sort_table(name, table), to_table(name, results[name])]
        )
    same = own and not work and len(kept) == before["images"].num_rows
    if not same:  # a shard where nothing changed keeps its files as they are
        with atomic_dir(state_dir) as new:
            for name in SHARD_TABLES:
                write_atomic(sort_table(name, tables[name]), new / f"{name}.parquet")
            if shards is not None:
                (new / "layout.json").write_text(json.dumps({"shards": shards}))
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


def retire_states(state_root: str | os.PathLike, keep: int) -> None:
    """Remove the states of shards ``>= keep`` (left by a larger shard count):
    their images now live in other shards, and a stale state must not be
    taken for a current one if the count grows again."""
    import shutil

    root = Path(state_root)
    if not root.is_dir():
        return
    for path in root.iterdir():
        name = path.name.removesuffix(".versions")
        if name.isdigit() and int(name) >= keep:
            if path.is_symlink() or path.is_file():
                path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)
