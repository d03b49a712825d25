"""Fingerprint one shard of the manifest on dask workers, incrementally.

Each shard keeps its last tables in ``<results>/state/<shard>`` (swapped in
atomically). A run reads pixels only for images that are new, failed last
time, were computed with other settings or code versions, or whose file
changed; an image whose size and mtime are unchanged keeps its rows without
being opened. When only the mtime changed (or ``recheck`` is on) the raw-file
ISCC-SUM decides: equal bytes keep the rows, other bytes are read again.

One dask task per image (per batch of small ones): an image's failure
becomes rows in ``errors`` and ``status=error``, never an exception that
stops the shard.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from biocodes.infra.errors import BiocodeError, ChangedError, display_path
from biocodes.infra.limits import Limits
from biocodes.infra.location import Location
from biocodes.repository.tables import SCHEMAS, SHARD_TABLES, to_table, write_atomic
from biocodes.views.build import ViewOptions


def _image_row(row: Mapping[str, Any]) -> dict:
    """The ``images`` columns every outcome shares: the file and who read it."""
    image = {k: row[k] for k in ("image_id", "root", "path", "size", "mtime_ns")}
    image.update(
        worker=socket.gethostname(), slurm_job_id=os.environ.get("SLURM_JOB_ID")
    )
    return image


def files_rows(row: Mapping[str, Any]) -> list[dict]:
    """The ``files`` rows of a fileset's manifest row (none for one file)."""
    if not row.get("members"):
        return []
    return [
        {"image_id": row["image_id"], "path": p, "size": size, "mtime_ns": mtime}
        for p, size, mtime in json.loads(row["members"])
    ]


def _members(rows: list[dict] | None) -> set[tuple]:
    return {(r["path"], r["size"], r["mtime_ns"]) for r in rows or []}


def _root_dir(row: Mapping[str, Any]) -> str:
    """The root folder of a local manifest row (its abspath minus its path)."""
    folder = row["abspath"]
    for _ in row["path"].split("/"):
        folder = os.path.dirname(folder)
    return folder


def _result_files(row: Mapping[str, Any], result: dict) -> list[dict]:
    """``files`` rows of a set only its reader knew (Bio-Formats' used files),
    with paths relative to the root; the scan's members where it knew them."""
    if row.get("members") or not result.get("files"):
        return files_rows(row)
    root = _root_dir(row)
    return [
        {
            "image_id": row["image_id"],
            "path": Path(
                os.path.relpath(os.path.join(result["folder"], f["path"]), root)
            ).as_posix(),
            "size": f["size"],
            "mtime_ns": f["mtime_ns"],
        }
        for f in result["files"]
    ]


def _same_members(row: Mapping[str, Any], previous: list[dict] | None) -> bool:
    """Whether every member of a fileset has the size and mtime recorded last
    run: the scan's members, or else the recorded ones stat'ed now."""
    listed = files_rows(row)
    if listed or not previous:
        return _members(previous) == _members(listed)
    root = _root_dir(row)
    for r in previous:
        try:
            st = os.stat(os.path.join(root, r["path"]))
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns) != (r["size"], r["mtime_ns"]):
            return False
    return True


def settings_key(simprints: bool, views: ViewOptions | None) -> str:
    """Hash of everything that decides an image's rows besides its bytes:
    the options, the versions of every package that can change a code and
    the reader walk rules."""
    import hashlib

    from biocodes.core.imagewalk import SPEC_VERSION
    from biocodes.repository.catalogue import code_versions
    from biocodes.sources.base import WALK_RULES

    opts = None if views is None else asdict(views)
    if opts is not None:
        opts["thumbnails"] = views.thumbnails is not None
        if not opts["plane_images"]:  # the key of catalogues from before it
            del opts["plane_images"]
    key = {
        "simprints": simprints,
        "views": opts,
        "versions": code_versions(),
        "spec": SPEC_VERSION,
        "walk_rules": WALK_RULES,  # a new rule re-reads every image once
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
    location: Location | None = None,
) -> dict:
    """All catalogue rows for one manifest row (``raw``: its raw-file code,
    and ``location``: where its bytes are, if the caller has just computed
    them).

    A row the scan refused (``error``) becomes its error rows unread. A file
    whose size or mtime differs from the scan's has changed since: it is an
    error (``changed_during_read``) this run and is read again next run.

    With views, thumbnails go to ``<views.thumbnails>/<id[:2]>/<id>/`` and the
    ``thumbnail`` column holds their path relative to ``results_dir``.
    """
    from biocodes.core.fingerprint import biocode
    from biocodes.infra.errors import as_biocode_error

    iid = row["image_id"]
    if views is not None and views.thumbnails is not None:
        views = replace(views, thumbnails=f"{views.thumbnails}/{iid[:2]}/{iid}")

    try:
        if row.get("error"):
            raise ScanError(row)
        location, now = _unchanged_since_scan(row, limits, location)
        result = biocode(
            location,
            simprints=simprints,
            views=views,
            raw=raw,
            limits=limits,
            before=now,
        )
    except Exception as exc:  # every failure becomes an error row
        return error_rows(row, as_biocode_error(row["abspath"], exc))
    return result_rows(row, result, results_dir)


def result_rows(
    row: Mapping[str, Any], result: dict, results_dir: str | None = None
) -> dict:
    """All catalogue rows of an image from its biocode ``result``."""
    from biocodes.core.imagewalk import plane_position

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
    image.update(_all_failed(parts))
    out["images"].append(image)
    out["files"] = _result_files(row, result)
    for p in parts:
        if "error" in p:
            out["errors"].append(
                {
                    "image_id": row["image_id"],
                    "path": row["path"],
                    "scene_index": p["scene_index"],
                    "stage": p["error"]["stage"],
                    "error_type": p["error"]["type"],
                    "message": p["error"]["message"].replace(
                        display_path(row["abspath"]), row["path"]
                    ),
                }
            )
    for p in parts:
        where = {k: p.get(k) for k in ("plate", "well", "field", "acquisition")}
        if "error" in p:  # a plate's field that failed alone
            out["scenes"].append(_failed_scene(row, p, where))
            continue
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
                "chunks_absent": p.get("chunks_absent"),
                "plane_digests": packed_digests(p.get("plane_digests")),
                "status": "ok",
                "error": None,
                **scene_metadata_columns(p.get("metadata") or {}),
                **where,
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
        for pi in p.get("plane_images", []):
            out["plane_images"].append(
                {"image_id": row["image_id"], "scene_index": p["scene_index"], **pi}
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


def packed_digests(digests: list[str] | None) -> bytes | None:
    """A part's ``plane_digests`` (hex per plane) as the catalogue stores
    them: one binary value, 8 bytes per plane."""
    return None if digests is None else bytes.fromhex("".join(digests))


def scene_metadata_columns(meta: Mapping[str, Any]) -> dict:
    """The scenes table's metadata columns (null where the reader says
    nothing)."""
    from biocodes.sources.metadata import FIELDS

    return {k: meta.get(k) for k in FIELDS}


def _all_failed(parts: list[dict]) -> dict:
    """A plate none of whose fields could be read is a failed image."""
    if not parts or any("error" not in p for p in parts):
        return {}
    first = parts[0]["error"]["message"]
    return {"status": "error", "error": f"every field failed; first: {first}"}


def _failed_scene(row: Mapping[str, Any], part: dict, where: dict) -> dict:
    """The scenes row of a field that failed (its errors row is added
    beside it)."""
    message = part["error"]["message"].replace(
        display_path(row["abspath"]), row["path"]
    )
    return {
        "image_id": row["image_id"],
        "path": row["path"],
        "scene_index": part["scene_index"],
        "scene_name": part["scene_name"],
        "status": "error",
        "error": message,
        **where,
    }


class ScanError(BiocodeError):
    """The scan's verdict on a manifest row, carried to the catalogue."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        super().__init__(row["path"], "", stage="scan")
        self.kind = row["error_type"] or "error"
        self.args = (row["error"],)

    def __str__(self) -> str:
        return self.args[0]


def _unchanged_since_scan(
    row: Mapping[str, Any], limits: Limits | None, location: Location | None = None
) -> tuple[Location, tuple[int, int] | None]:
    """Where the image's bytes are (``location``, or located now), and their
    state now if it is the scan's; raise if it differs."""
    from biocodes.sources import locate

    location = location or locate(row["abspath"], limits)
    try:
        now = location.state()
    except (OSError, BiocodeError):
        return location, None  # gone or unreadable: opening it says why
    if now != (row["size"], row["mtime_ns"]):
        raise ChangedError(
            row["abspath"],
            f"changed since the scan (size, mtime {row['size']}, "
            f"{row['mtime_ns']} -> {now[0]}, {now[1]}); not stored, read again "
            "next run",
        )
    return location, now


def stamped(result: dict, key: str, run_id: str) -> dict:
    """An image's rows (``{table: [row, ...]}``) marked with the run that
    read them and, on its ``images`` row, the settings they were read with
    (what the next run compares to reuse them). Changes ``result``."""
    for name, items in result.items():
        for r in items:
            if name == "images":
                r["settings_key"] = key
            if "run_id" in SCHEMAS[name].names:
                r["run_id"] = run_id
    return result


def error_rows(row: Mapping[str, Any], exc: BiocodeError) -> dict:
    """The images and errors rows of an image that failed: no codes at all."""
    message = str(exc).replace(display_path(row["abspath"]), row["path"])
    image = _image_row(row)
    image.update(status="error", error=message, scene_count=0)
    out: dict[str, list[dict]] = {name: [] for name in SHARD_TABLES}
    out["images"].append(image)
    out["files"] = files_rows(row)
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
    from biocodes.core.codes import raw_file_code
    from biocodes.sources import locate

    try:
        location = locate(row["abspath"], limits)
        raw = raw_file_code(location, limits=limits)
    except Exception:  # unreadable now: the full read reports why
        location = raw = None
    if raw is not None and raw["iscc_code"] == previous_code:
        return None
    return fingerprint_image(row, simprints, views, results_dir, raw, limits, location)


def _failure(exc: BaseException, path: str) -> dict:
    """A failure as plain data: it crosses from a dask worker intact
    (BiocodeError's own arguments do not survive pickling)."""
    from biocodes.infra.errors import as_biocode_error

    err = as_biocode_error(path, exc)
    return {"kind": err.kind, "stage": err.stage, "cause": err.cause}


def _error(path: str, failure: dict) -> BiocodeError:
    err = BiocodeError(path, failure["cause"], stage=failure["stage"])
    err.kind = failure["kind"]
    return err


def plate_raw(row: Mapping[str, Any], limits: Limits | None) -> dict:
    """The piece of a split plate that checks it is the scan's and hashes its
    raw bytes: ``{"raw": ...}`` or ``{"failure": ...}``."""
    from biocodes.core.codes import raw_file_code

    try:
        location, _now = _unchanged_since_scan(row, limits)
        return {"raw": raw_file_code(location, limits=limits)}
    except Exception as exc:
        return {"failure": _failure(exc, row["abspath"])}


def plate_piece(
    row: Mapping[str, Any],
    fields: range,
    simprints: bool,
    views: ViewOptions | None,
    limits: Limits | None,
) -> list[dict]:
    """The parts of some fields of a split plate; a failure to open them is
    each of their parts' error."""
    from biocodes.core.fingerprint import fingerprint_fields

    iid = row["image_id"]
    if views is not None and views.thumbnails is not None:
        views = replace(views, thumbnails=f"{views.thumbnails}/{iid[:2]}/{iid}")
    try:
        return fingerprint_fields(row["abspath"], fields, simprints, views, limits)
    except Exception as exc:
        return _failed_fields(
            fields, _error(row["abspath"], _failure(exc, row["abspath"]))
        )


def _failed_fields(fields: range, err: BiocodeError) -> list[dict]:
    return [
        {
            "iscc_code": None,
            "units": None,
            "scene_index": i,
            "scene_name": f"field {i}",
            "error": err.to_dict(),
        }
        for i in fields
    ]


def _plate_pieces(
    row: Mapping[str, Any], per_task: int, limits: Limits | None
) -> list[range] | None:
    """The field ranges a plate is hashed in, or None to read it whole (not
    a plate, small enough, or unreadable: the whole read says why)."""
    from biocodes.core.fingerprint import plate_field_count

    if per_task < 1 or not row["is_store"] or row.get("error"):
        return None
    try:
        count = plate_field_count(row["abspath"], limits)
    except Exception:
        return None
    if count is None or count <= per_task:
        return None
    return [range(i, min(i + per_task, count)) for i in range(0, count, per_task)]


class _SplitPlate:
    """The pieces of one plate in flight, assembled when all are back."""

    def __init__(
        self,
        row: Mapping[str, Any],
        pieces: int,
        limits: Limits | None,
        results_dir: str | None,
    ) -> None:
        self.row, self.left = row, pieces + 1  # + the raw piece
        self.limits, self.results_dir = limits, results_dir
        self.raw: dict | None = None
        self.failure: dict | None = None
        self.parts: list[dict] = []

    def add(self, value: Any) -> dict | None:
        """Take one piece's result; the plate's rows once all are in."""
        if isinstance(value, dict):
            self.raw, self.failure = value.get("raw"), value.get("failure")
        else:
            self.parts += value
        self.left -= 1
        if self.left:
            return None
        row = self.row
        if self.failure is not None:
            return error_rows(row, _error(row["abspath"], self.failure))
        try:
            _unchanged_since_scan(row, self.limits)  # after every piece
        except BiocodeError as exc:
            return error_rows(row, exc)
        parts = sorted(self.parts, key=lambda p: p["scene_index"])
        result = {**self.raw, "format": "ome-zarr-plate", "parts": parts}
        return result_rows(row, result, self.results_dir)


def _died(client: Any, exc: Exception, row: Mapping[str, Any]) -> BiocodeError:
    """Why every worker that held an image died: its memory limit (the nanny
    logs a ``worker-restart-memory`` event) or something else (SIGKILL,
    walltime, the kernel's OOM killer)."""
    import time

    from dask.utils import format_bytes

    from biocodes.infra.errors import OutOfMemoryError, WorkerDiedError

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
    from biocodes.repository.tables import (
        read_catalogue_table,
        read_table,
        table_files,
    )

    layout = state_dir / "layout.json"
    own = shards is None or (
        layout.exists() and json.loads(layout.read_text()).get("shards") == shards
    )
    borrow = not own and catalogue is not None and table_files(catalogue, "images")
    found = {}
    for name in SHARD_TABLES:
        if borrow:  # only this shard's images' rows, whichever layout
            mine = pc.field("image_id").isin(ids)
            found[name] = read_catalogue_table(catalogue, name, filter=mine)
        else:
            found[name] = read_table(state_dir / f"{name}.parquet", name)
    if borrow:  # removed images are not this run's to keep
        images = found["images"]
        found["images"] = images.filter(pc.not_equal(images["status"], "removed"))
    return found, own


def _stale_filesets(rows: pa.Table, files: pa.Table) -> pa.Array:
    """Ids of filesets whose members changed since their rows were written
    (:func:`_same_members`): only the rows of filesets are looked at, in
    Python; single files cost nothing here."""
    ids = pc.unique(files["image_id"])
    sets = rows.filter(
        pc.or_(pc.is_valid(rows["members"]), pc.is_in(rows["image_id"], ids))
    )
    if not sets.num_rows:
        return pa.array([], pa.string())
    recorded: dict[str, list[dict]] = {}
    wanted = files.filter(pc.is_in(files["image_id"], sets["image_id"]))
    for r in wanted.to_pylist():
        recorded.setdefault(r["image_id"], []).append(r)
    stale = []
    for row in sets.to_pylist():
        row["abspath"] = os.fsdecode(row["abspath"])
        if not _same_members(row, recorded.get(row["image_id"])):
            stale.append(row["image_id"])
    return pa.array(stale, pa.string())


def _scanned_members(rows: pa.Table, kept: pa.ChunkedArray) -> list[dict]:
    """``files`` rows, as the scan saw them, of the kept filesets it listed."""
    sets = rows.filter(
        pc.and_(pc.is_valid(rows["members"]), pc.is_in(rows["image_id"], kept))
    )
    return [r for row in sets.to_pylist() for r in files_rows(row)]


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
    plate_fields_per_task: int = 64,
    run_id: str | None = None,
) -> dict[str, int]:
    """Bring the shard's tables under ``state_dir`` up to date with the manifest.

    Three steps: decide what to read (:func:`decide_reads`: a join of the
    manifest with the shard's last tables, on Arrow columns, so an unchanged
    image costs no Python), hash on the cluster (:func:`hash_images`: one
    dask task per image, or per piece of a large plate), write the partition
    (:func:`shard_tables`, :func:`write_state`: a shard where nothing
    changed keeps its state files untouched). With ``shards`` (the run's
    shard count) and ``catalogue``, a state written for another count is
    replaced by the catalogue's rows (see :func:`_previous`).

    Returns counts that add up to ``images``: ``read`` (opened to read
    pixels, whether or not that succeeded; a re-hash that found other bytes
    is then read and counts here only), ``rehashed`` (raw bytes hashed and
    found unchanged: rows kept), ``reused`` (not opened at all),
    ``in_progress`` (still being written: not opened, previous rows kept)
    and ``refused`` (refused at the scan: a 0-byte file, a bad symlink).
    A plate with more than ``plate_fields_per_task`` fields is read in
    tasks of that many fields (and one for its raw bytes), so its fields are
    hashed on several workers; 0 reads every plate in one task.

    ``manifest`` may be the run's or the shard's own part of it
    (:func:`write_shard_manifests`); ``run_id`` defaults to the one stamped
    on it. A shard left with nothing that must be looked at again next run
    records the part's digest, so the next scan can leave it untouched.
    """
    import pyarrow.parquet as pq

    state_dir = Path(state_dir)
    meta = pq.read_schema(manifest).metadata or {}
    if run_id is None:
        run_id = meta.get(b"run_id", b"").decode()
    rows = pq.read_table(manifest, filters=[("shard", "=", shard)])
    key = settings_key(simprints, views)
    before, own = _previous(state_dir, rows["image_id"], shards, catalogue)
    plan = decide_reads(rows, before, key, run_id, recheck)
    task = _Task(simprints, views, results_dir, limits, plate_fields_per_task)
    hashed = hash_images(plan.work, task, key, run_id, cluster, threads)
    counts = {k: v + hashed.counts.get(k, 0) for k, v in plan.counts.items()}
    tables = shard_tables(plan, before, hashed, rows)
    kept = plan.kept_now.num_rows + len(hashed.kept)
    if not (own and not plan.work and kept == before["images"].num_rows):
        # its own last tables: the job finds its partition's changes too
        compared = (before, run_id) if own else None
        write_state(state_dir, tables, shards, compared)  # else: kept as they are
    # the part's digest covers its rows (these rows) and the settings and
    # shard count the scan assumed: vouch for it only if they are this job's
    digest = meta.get(SHARD_DIGEST, b"").decode()
    assumed = json.loads(meta.get(SHARD_CONTEXT, b"null"))
    settled = (
        digest
        and assumed == {"settings": key, "shards": shards}
        and not recheck
        and not counts["in_progress"]
        and _settled(tables, rows)
    )
    _mark_quiet(state_dir, digest if settled else None)
    return counts


@dataclass
class ReadPlan:
    """Which of a shard's images to read, and which rows to keep."""

    #: the manifest rows joined with the previous rows (``_size``, ``_mtime``,
    #: ``_status``, ``_key``, ``_run``, ``_code``)
    joined: pa.Table
    #: images still being written (not read this run)
    waiting: pa.Array
    #: of those, the ones with previous rows (kept as they were)
    wait_kept: pa.Array
    #: rows of the images whose previous rows are kept without a read
    kept_now: pa.Table
    #: (manifest row, previous raw code to re-hash first, or None)
    work: list[tuple[dict, str | None]]
    counts: dict[str, int]


def decide_reads(
    rows: pa.Table,
    before: Mapping[str, pa.Table],
    key: str,
    run_id: str,
    recheck: bool = False,
) -> ReadPlan:
    """Decide what to read: an image is kept unread when its previous rows
    are usable (ok or empty, same settings key, no failed field, no scan
    error) and its size, mtime (and a fileset's members) are unchanged; one
    whose size is unchanged is re-hashed first; one still being written
    waits. On Arrow columns: an unchanged image costs no Python."""
    columns = ["image_id", "size", "mtime_ns", "status", "settings_key"]
    prev = before["images"].select([*columns, "run_id", "iscc_code"])
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
    # a plate with a failed field is read again, like a failed image
    failed_fields = before["errors"]["image_id"]
    usable = pc.and_(usable, pc.invert(pc.is_in(t["image_id"], failed_fields)))
    # mtime -1: a remote store whose server cannot list it, never "unchanged"
    unchanged = pc.and_(
        pc.equal(t["_mtime"], t["mtime_ns"]), pc.greater_equal(t["mtime_ns"], 0)
    ).fill_null(False)
    # a fileset: every member's size and mtime, not only the total's
    stale = _stale_filesets(t.select(rows.column_names), before["files"])
    unchanged = pc.and_(unchanged, pc.invert(pc.is_in(t["image_id"], stale)))
    keep = pc.and_(pc.and_(usable, unchanged), pa.scalar(not recheck))
    # still being written (see build_manifest): its previous rows, as they
    # were, or nothing yet; read once it has settled
    if "in_progress" in t.column_names:
        waiting = t["in_progress"].fill_null(False)
    else:
        waiting = pa.array([False] * t.num_rows, pa.bool_())
    keep = pc.and_(keep, pc.invert(waiting))
    wait_kept = pc.and_(waiting, pc.is_valid(t["_status"]))
    rehash = pc.and_(pc.invert(keep), pc.and_(usable, pc.is_valid(t["_code"])))
    kept_now = t.filter(pc.or_(keep, wait_kept))
    again = int(pc.sum(pc.equal(t.filter(keep)["_run"], run_id)).as_py() or 0)
    in_progress = int(pc.sum(waiting).as_py() or 0)
    counts = {
        "images": t.num_rows,
        "read": again,  # read by an earlier, interrupted attempt at this run
        "rehashed": 0,
        "reused": kept_now.num_rows - again - int(pc.sum(wait_kept).as_py() or 0),
        "in_progress": in_progress,
        "refused": 0,
    }
    todo_mask = pc.and_(pc.invert(keep), pc.invert(waiting))
    codes = pc.if_else(rehash, t["_code"], pa.scalar(None, pa.string()))
    work = []
    for row, code in zip(
        t.filter(todo_mask).select(rows.column_names).to_pylist(),
        codes.filter(todo_mask).to_pylist(),
        strict=True,
    ):
        row["abspath"] = os.fsdecode(row["abspath"])
        work.append((row, code))
    return ReadPlan(t, waiting, wait_kept, kept_now, work, counts)


@dataclass
class _Task:
    """What every image task of a shard is given besides its row."""

    simprints: bool
    views: ViewOptions | None
    results_dir: str | None
    limits: Limits | None
    plate_fields_per_task: int


@dataclass
class Hashed:
    """What the cluster gave back: new rows per table, the ids of images
    re-hashed and found unchanged (rows kept), and their counts."""

    results: dict[str, list[dict]]
    kept: list[str]
    counts: dict[str, int]


def hash_images(
    work: list[tuple[dict, str | None]],
    task: _Task,
    key: str,
    run_id: str,
    cluster: Mapping[str, Any],
    threads: int,
) -> Hashed:
    """Hash on the cluster: one dask task per image (re-hash first where a
    previous raw code is given), small images in batches (:func:`_batches`),
    a large plate in pieces of fields; a worker that died is the image's
    error row. No dask without work: a quiet shard starts in a blink."""
    hashed = Hashed({name: [] for name in SHARD_TABLES}, [], {})
    if not work:
        return hashed
    from distributed import as_completed

    from biocodes.repository.cluster import dask_client

    def take(result: dict, count: str) -> None:
        for name, items in stamped(result, key, run_id).items():
            hashed.results[name].extend(items)
        hashed.counts[count] = hashed.counts.get(count, 0) + 1

    def image_done(row: dict, result: dict | None) -> None:
        if result is None:  # re-hashed: same bytes, rows kept
            hashed.kept.append(row["image_id"])
            hashed.counts["rehashed"] = hashed.counts.get("rehashed", 0) + 1
        else:  # read (a re-hash that found other bytes too), or refused
            take(result, "refused" if row.get("error") else "read")

    with dask_client(cluster, threads) as client:
        futures = _submit(client, work, task, threads)
        done = as_completed(futures)
        for future in done:
            row, code, plate, fields = futures.pop(future)
            if isinstance(row, list):  # a batch of small images
                results = _batch_outcome(future)
                future.release()
                items = list(zip(row, code, strict=True))
                if results is None:  # a worker died on it: one task per image
                    results = [SPLIT] * len(items)
                again = [
                    w for w, res in zip(items, results, strict=True) if res == SPLIT
                ]
                for (r, _c), result in zip(items, results, strict=True):
                    if result != SPLIT:
                        image_done(r, result)
                if again:  # plates to split, or a dead worker's images
                    more = _submit(client, again, task)
                    futures.update(more)
                    done.update(more)
                continue
            result = _outcome(client, future, row, plate, fields)
            future.release()
            if plate is not None:
                result = plate.add(result)
                if result is not None:
                    take(result, "read")
            else:
                image_done(row, result)
    return hashed


#: an image of at most this many bytes is hashed in a batch with others: one
#: dask task per small image costs the scheduler (in the shard job, on the
#: same cores) about as much CPU as the image's own read
BATCH_BYTES = 1 << 20
#: at most this many images per batch (fewer when a shard has few: every
#: worker gets several batches)
BATCH_IMAGES = 32


#: a batch's result for a store that is a plate to hash in pieces (the shard
#: job then splits it)
SPLIT = "split"


def hash_batch(
    items: list[tuple[dict, str | None]], task: _Task
) -> list[dict | str | None]:
    """The results of several small images, in order, as their own tasks
    would give them (each image's failure is its error rows); :data:`SPLIT`
    for a plate of more fields than a task takes. A store's plate check
    (opening it) happens here, on a worker, not in the shard job."""
    out: list[dict | str | None] = []
    for row, code in items:
        if _plate_pieces(row, task.plate_fields_per_task, task.limits) is not None:
            out.append(SPLIT)
        elif code is None:
            args = (row, task.simprints, task.views, task.results_dir, None)
            out.append(fingerprint_image(*args, task.limits))
        else:
            args = (row, code, task.simprints, task.views, task.results_dir)
            out.append(_rehash_or_fingerprint(*args, task.limits))
    return out


def _batch_outcome(future: Any) -> list[dict | str | None] | None:
    """A batch's results, or None if every worker that held it died (its
    images are then hashed one task each, so only the culprit fails)."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        return None


def _batches(
    work: list[tuple[dict, str | None]], threads: int
) -> tuple[list[list[tuple[dict, str | None]]], list[tuple[dict, str | None]]]:
    """The small images' batches (single files and stores; not filesets),
    and the rest (one task each)."""
    small = [
        w for w in work if not w[0].get("members") and 0 <= w[0]["size"] <= BATCH_BYTES
    ]
    if len(small) < 2:
        return [], work
    picked = {id(w) for w in small}
    rest = [w for w in work if id(w) not in picked]
    # several batches per worker, so the last ones do not leave cores idle
    size = max(1, min(BATCH_IMAGES, len(small) // (8 * max(1, threads))))
    return [small[i : i + size] for i in range(0, len(small), size)], rest


def _submit(
    client: Any,
    work: list[tuple[dict, str | None]],
    task: _Task,
    threads: int | None = None,
) -> dict:
    """One future per image (per piece of a split plate), or, with
    ``threads``, per batch of small images (see :func:`_batches`), with what
    its result is taken with: ``(row, code, plate, fields)``, or for a batch
    ``(rows, codes, None, None)``."""
    futures = {}
    limits = task.limits
    batches, work = _batches(work, threads) if threads else ([], work)
    for batch in batches:
        first = batch[0][0]["image_id"]
        f = client.submit(hash_batch, batch, task, key=f"batch-{first}", pure=False)
        futures[f] = ([r for r, _ in batch], [c for _, c in batch], None, None)
    for row, code in work:
        iid = row["image_id"]
        pieces = _plate_pieces(row, task.plate_fields_per_task, limits)
        if pieces is not None:  # hashed apart; no rehash shortcut
            plate = _SplitPlate(row, len(pieces), limits, task.results_dir)
            f = client.submit(plate_raw, row, limits, key=f"raw-{iid}", pure=False)
            futures[f] = (row, None, plate, None)
            for r in pieces:
                args = (plate_piece, row, r, task.simprints, task.views, limits)
                f = client.submit(*args, key=f"fields-{iid}-{r.start}", pure=False)
                futures[f] = (row, None, plate, r)
            continue
        if code is None:
            args = (fingerprint_image, row, task.simprints, task.views)
            args += (task.results_dir, None, limits)
        else:
            args = (_rehash_or_fingerprint, row, code, task.simprints, task.views)
            args += (task.results_dir, limits)
        f = client.submit(*args, key=f"image-{iid}", pure=False)
        futures[f] = (row, code, None, None)
    return futures


def _outcome(
    client: Any, future: Any, row: dict, plate: Any, fields: range | None
) -> Any:
    """A future's result, or, if every worker that held it died, its error."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        died = _died(client, exc, row)
        if plate is None:
            return error_rows(row, died)
        if fields is None:
            return {"failure": _failure(died, row["abspath"])}
        return _failed_fields(fields, died)  # the fields that worker held


def shard_tables(
    plan: ReadPlan, before: Mapping[str, pa.Table], hashed: Hashed, rows: pa.Table
) -> dict[str, pa.Table]:
    """The shard's tables: the kept images' previous rows (with their
    current size and mtime, and a kept fileset's members as scanned now)
    and the new rows, each sorted."""
    from biocodes.repository.tables import sort_table

    t, waiting, wait_kept = plan.joined, plan.waiting, plan.wait_kept
    kept = pa.chunked_array(
        [
            plan.kept_now["image_id"].combine_chunks(),
            pa.array(hashed.kept, pa.string()),
        ]
    )
    # the image's current size and mtime; an image in progress keeps those
    # its rows were read at, so it is read again once it has settled
    sizes = pa.table(
        {
            "image_id": t["image_id"],
            "size": pc.if_else(wait_kept, t["_size"], t["size"]),
            "mtime_ns": pc.if_else(wait_kept, t["_mtime"], t["mtime_ns"]),
        }
    )
    settled_ids = t.filter(pc.invert(waiting))["image_id"]
    # a kept fileset's members as now (one in progress: as they were)
    scanned = _scanned_members(rows, pc.filter(kept, pc.is_in(kept, settled_ids)))
    tables = {}
    for name in SHARD_TABLES:
        table = before[name].filter(pc.is_in(before[name]["image_id"], kept))
        if name == "images":  # the image's current size and mtime
            table = table.drop_columns(["size", "mtime_ns"]).join(
                sizes, "image_id", join_type="inner"
            )
        if name == "files" and scanned:
            ids = pa.array(sorted({r["image_id"] for r in scanned}), pa.string())
            table = pa.concat_tables(
                [
                    table.filter(pc.invert(pc.is_in(table["image_id"], ids))),
                    to_table("files", scanned),
                ]
            )
        tables[name] = pa.concat_tables(
            [sort_table(name, table), to_table(name, hashed.results[name])]
        )
    return tables


def write_state(
    state_dir: Path,
    tables: Mapping[str, pa.Table],
    shards: int | None,
    compared: tuple[Mapping[str, pa.Table], str] | None = None,
) -> None:
    """Write the shard's tables (its partition of the catalogue, before the
    merge) and their code index part, swapped in at once, exactly as the
    merge writes a partition: a file the merge need not rewrite is linked
    into the catalogue. With ``compared`` (the shard's last tables, read
    from ``state_dir``, and the run id), also the partition's changes
    against them (:func:`~biocodes.repository.catalogue.write_partition_changes`)."""
    from biocodes.infra.atomic import atomic_dir
    from biocodes.repository.catalogue import file_identity, write_partition_changes
    from biocodes.repository.codeindex import write_shard_index
    from biocodes.repository.tables import sorted_batches

    # the files the last tables came from, before they are swapped out
    source = {
        n: file_identity(state_dir / f"{n}.parquet") for n in ("images", "scenes")
    }
    with atomic_dir(state_dir) as new:
        for name in SHARD_TABLES:
            write_atomic(sorted_batches(name, tables[name]), new / f"{name}.parquet")
        write_shard_index(new)  # on the cluster: the merge links it
        if compared is not None:
            before, run_id = compared
            write_partition_changes(new, source, dict(before), dict(tables), run_id)
        if shards is not None:
            (new / "layout.json").write_text(json.dumps({"shards": shards}))


#: schema metadata of a shard's part of the manifest: its digest, and the
#: settings key and shard count the digest covers
SHARD_DIGEST = b"shard_digest"
SHARD_CONTEXT = b"shard_context"
#: in a shard's state: the digest of the manifest part it is up to date with
QUIET_FILE = "quiet.json"


def _settled(tables: Mapping[str, pa.Table], rows: pa.Table) -> bool:
    """Whether a shard's state leaves nothing to look at again while its
    manifest rows stay the same: no failed image or field (read again every
    run), no remote store without mtimes, no fileset whose members only its
    reader knew (stat'ed every run)."""
    images = tables["images"]
    if tables["errors"].num_rows or images.num_rows != rows.num_rows:
        return False
    ok = pc.is_in(images["status"], pa.array(["ok", "empty"])).fill_null(False)
    if not pc.all(ok, min_count=0).as_py():  # an empty shard is settled
        return False
    if rows.num_rows and pc.min(rows["mtime_ns"]).as_py() < 0:
        return False
    listed = rows.filter(pc.is_valid(rows["members"]))["image_id"]
    files = tables["files"]["image_id"]
    return len(files) == 0 or bool(pc.all(pc.is_in(files, listed)).as_py())


def _mark_quiet(state_dir: Path, digest: str | None) -> None:
    """Record (or withdraw) the manifest digest the state is up to date with."""
    from biocodes.infra.atomic import atomic_path

    marker = state_dir / QUIET_FILE
    if digest is None:
        if marker.exists():
            marker.unlink()
        return
    if state_dir.exists():
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps({"digest": digest}))


def shard_digest(part: pa.Table, context: Mapping[str, Any]) -> str:
    """A digest of a shard's manifest rows and of what else decides its
    rows (``context``: the settings key, the shard count)."""
    import hashlib

    sink = pa.BufferOutputStream()
    table = part.replace_schema_metadata(None).combine_chunks()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    h = hashlib.sha256(sink.getvalue().to_pybytes())
    h.update(json.dumps(context, sort_keys=True).encode())
    return h.hexdigest()


def write_shard_manifests(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    state_root: str | os.PathLike,
    shards: int,
    simprints: bool,
    views: ViewOptions | None,
    recheck: bool = False,
) -> list[int]:
    """Split the run's manifest into one file per shard, ``<out_dir>/<k>.parquet``,
    and return the shards written.

    A shard whose rows, settings and shard count are those its state is up
    to date with, and whose state is settled (see :func:`run_shard`), is a
    quiet shard: its file is left untouched, so its Snakemake job (whose
    output is newer) does not run at all. Every other shard's file is
    rewritten, so its job runs."""
    import numpy as np
    import pyarrow.parquet as pq

    from biocodes.repository.tables import write_atomic

    table = pq.read_table(manifest)
    meta = table.schema.metadata or {}
    key = settings_key(simprints, views)
    # one stable sort by shard, then a slice per shard: linear in the rows
    # however many shards (each part keeps the manifest's order)
    which = table["shard"].to_numpy()
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(shards + 1))
    context = {"settings": key, "shards": shards}
    written = []
    for k in range(shards):
        part = table.take(pa.array(order[bounds[k] : bounds[k + 1]]))
        digest = shard_digest(part, context)
        path = Path(out_dir, f"{k}.parquet")
        if not recheck and _quiet(path, Path(state_root, str(k)), digest):
            continue
        extra = {SHARD_DIGEST: digest, SHARD_CONTEXT: json.dumps(context)}
        write_atomic(part.replace_schema_metadata({**meta, **extra}), path)
        written.append(k)
    return written


def part_shards(part: str | os.PathLike) -> int | None:
    """The run's shard count, as the scan stamped it on a shard's part."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(part).metadata or {}
    context = json.loads(meta.get(SHARD_CONTEXT, b"null")) or {}
    return context.get("shards")


def _quiet(part: Path, state_dir: Path, digest: str) -> bool:
    """Whether the shard's part on disk is the one it would be now, and its
    state vouches for being up to date with it and settled."""
    import pyarrow.parquet as pq

    try:
        marker = json.loads((state_dir / QUIET_FILE).read_text())
        written = (pq.read_schema(part).metadata or {}).get(SHARD_DIGEST, b"")
    except (OSError, ValueError):
        return False
    return marker.get("digest") == digest == written.decode()


def counts_for_run(counts: Mapping[str, Any], run_id: str) -> dict[str, int]:
    """A shard job's counts as this run's: counts written by an earlier run
    belong to a quiet shard whose job did not run, whose images were all
    left alone."""
    if counts.get("run_id", run_id) == run_id:
        return {k: v for k, v in counts.items() if k != "run_id"}
    images = counts["images"]
    return {"images": images, "read": 0, "rehashed": 0, "reused": images}


def retire_states(state_root: str | os.PathLike, keep: int) -> None:
    """Remove the states (or manifest parts) of shards ``>= keep`` (left by
    a larger shard count): their images now live in other shards, and a
    stale state must not be taken for a current one if the count grows
    again."""
    import shutil

    root = Path(state_root)
    if not root.is_dir():
        return
    for path in root.iterdir():
        name = path.name.split(".")[0]  # 3, 3.versions, 3.parquet
        if name.isdigit() and int(name) >= keep:
            if path.is_symlink() or path.is_file():
                path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)
