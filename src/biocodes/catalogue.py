"""The Parquet catalogue: table schemas, atomic writes, and the shard merge.

Tables are written sorted and with fixed schemas, so two runs over the same
pixels produce byte-identical tables apart from run metadata. Every write goes
to a temporary file that is renamed into place: a reader never sees half a
table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

S, I64, I32, B = pa.string(), pa.int64(), pa.int32(), pa.bool_()

SCHEMAS: dict[str, pa.Schema] = {
    "images": pa.schema(
        [
            ("image_id", S),
            ("root", S),
            ("path", S),
            ("size", I64),
            ("mtime_ns", I64),
            ("format", S),
            ("scene_count", I32),
            ("iscc_code", S),
            ("datahash", S),
            ("status", S),
            ("error", S),
            ("note", S),
            ("settings_key", S),
            ("worker", S),
            ("slurm_job_id", S),
            ("run_id", S),
        ]
    ),
    "scenes": pa.schema(
        [
            ("image_id", S),
            ("path", S),
            ("scene_index", I32),
            ("scene_name", S),
            ("size_t", I64),
            ("size_c", I64),
            ("size_z", I64),
            ("size_y", I64),
            ("size_x", I64),
            ("dtype", S),
            ("planes", I64),
            ("nbytes", I64),
            ("iscc_code", S),
            ("data_code", S),
            ("instance_code", S),
            ("iscc_mixed", S),
            ("status", S),
            ("error", S),
        ]
    ),
    "simprints": pa.schema(
        [
            ("image_id", S),
            ("scene_index", I32),
            ("offset", I64),
            ("z", I64),
            ("c", I64),
            ("t", I64),
            ("simprint", S),
            ("size", I64),
        ]
    ),
    "views": pa.schema(
        [
            ("image_id", S),
            ("scene_index", I32),
            ("view_index", I32),
            ("strategy", S),
            ("z", I64),
            ("c", I64),
            ("t", I64),
            ("channels", pa.list_(I32)),
            ("iscc_image", S),
            ("thumbnail", S),
        ]
    ),
    "errors": pa.schema(
        [
            ("image_id", S),
            ("path", S),
            ("scene_index", I32),
            ("stage", S),
            ("error_type", S),
            ("message", S),
            ("run_id", S),
        ]
    ),
    "changes": pa.schema(
        [
            ("run_id", S),
            ("image_id", S),
            ("root", S),
            ("path", S),
            ("change", S),
            ("codes_changed", B),
            ("previous_iscc_code", S),
            ("iscc_code", S),
            ("error", S),
        ]
    ),
    "duplicates": pa.schema(
        [
            ("kind", S),
            ("group_id", S),
            ("image_id", S),
            ("root", S),
            ("path", S),
            ("scene_index", I32),
            ("format", S),
            ("code", S),
            ("distance", I32),
        ]
    ),
    "runs": pa.schema(
        [
            ("run_id", S),
            ("started", S),
            ("finished", S),
            ("config_sha256", S),
            ("config", S),
            ("versions", S),
            ("versions_changed", S),
            ("imagewalk_spec", S),
            ("images", I64),
            ("images_ok", I64),
            ("images_error", I64),
            ("images_removed", I64),
            ("images_read", I64),
            ("images_rehashed", I64),
            ("images_reused", I64),
            ("images_added", I64),
            ("images_changed", I64),
            ("images_failed", I64),
            ("scenes", I64),
            ("bytes_hashed", I64),
        ]
    ),
}

SORT_KEYS: dict[str, list[str]] = {
    "images": ["root", "path"],
    "scenes": ["image_id", "scene_index"],
    "simprints": ["image_id", "scene_index", "offset"],
    "views": ["image_id", "scene_index", "view_index"],
    "errors": ["image_id", "scene_index", "stage", "message"],
    "changes": ["run_id", "root", "path"],
    "duplicates": ["kind", "group_id", "image_id", "scene_index"],
    "runs": ["started", "run_id"],
}

TABLES = tuple(SCHEMAS)
#: tables each shard computes; the merge adds changes, duplicates and runs
SHARD_TABLES = ("images", "scenes", "simprints", "views", "errors")


def to_table(name: str, rows: Iterable[dict]) -> pa.Table:
    """Rows as a table with the fixed schema, sorted by the table's keys."""
    schema = SCHEMAS[name]
    rows = list(rows)
    table = pa.Table.from_pylist(
        [{f: r.get(f) for f in schema.names} for r in rows], schema=schema
    )
    if table.num_rows:
        table = table.sort_by([(k, "ascending") for k in SORT_KEYS[name]])
    return table


def write_atomic(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write Parquet (zstd) to a temporary sibling, then rename it into place."""
    from biocodes.atomic import atomic_path

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    return Path(path)


def sort_table(name: str, table: pa.Table) -> pa.Table:
    """An Arrow table in the fixed schema of ``name``, sorted by its keys, in
    one chunk: equal contents always write equal bytes."""
    schema = SCHEMAS[name]
    table = table.select(schema.names).cast(schema)
    if table.num_rows:
        table = table.sort_by([(k, "ascending") for k in SORT_KEYS[name]])
    return table.combine_chunks()


def read_tables(paths: Sequence[str | os.PathLike], name: str) -> pa.Table:
    """Concatenate one table from several shard files (missing files are
    empty; columns added since a file was written are null)."""
    parts = [read_table(p, name) for p in paths]
    if not parts:
        return SCHEMAS[name].empty_table()
    return pa.concat_tables(parts)


def read_table(path: str | os.PathLike, name: str) -> pa.Table:
    """One table file in the current schema; empty if it does not exist."""
    if not Path(path).exists():
        return SCHEMAS[name].empty_table()
    return pq.read_table(path, schema=SCHEMAS[name])


#: packages whose versions can change codes; recorded with every run
CODE_PACKAGES = (
    "biocodes",
    "iscc-sum",
    "iscc-core",
    "numpy",
    "tifffile",
    "zarr",
    "numcodecs",
    "aicspylibczi",
    "bioio",
    "bioio-base",
    "bioio-ome-tiff",
    "bioio-ome-zarr",
    "bioio-czi",
    "bioio-tifffile",
    "bioio-imageio",
    "imageio",
    "pillow",
    "pylibczirw",
)


def code_versions() -> dict[str, str]:
    """Installed versions of every package that can change a code."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in CODE_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def config_sha256(config: dict) -> str:
    import hashlib
    import json

    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


SECRET_WORDS = ("password", "secret", "token", "credential", "access_key", "api_key")


def redact(config: object) -> object:
    """The config with values of secret-looking keys replaced: the recorded
    config must never hold a credential."""
    if isinstance(config, dict):
        return {
            k: "<redacted>"
            if any(w in str(k).lower() for w in SECRET_WORDS)
            else redact(v)
            for k, v in config.items()
        }
    if isinstance(config, list):
        return [redact(v) for v in config]
    if isinstance(config, str):
        from biocodes.errors import redact_text

        return redact_text(config)
    return config


def read_catalogue(catalogue_dir: str | os.PathLike, name: str) -> list[dict]:
    """One table of a catalogue as rows; empty if it does not exist yet."""
    path = Path(catalogue_dir) / f"{name}.parquet"
    return pq.read_table(path).to_pylist() if path.exists() else []


def run_info(manifest: str | os.PathLike) -> tuple[str, str]:
    """The run id and start time the scan stamped on the manifest."""
    meta = pq.read_schema(manifest).metadata or {}
    return meta[b"run_id"].decode(), meta[b"started"].decode()


def _versions_changed(previous_runs: list[dict], versions: dict[str, str]) -> str:
    import json

    if not previous_runs:
        return ""
    before = json.loads(previous_runs[-1]["versions"] or "{}")
    moved = [
        f"{k} {before.get(k, 'absent')} -> {v}"
        for k, v in sorted(versions.items())
        if before.get(k, "absent") != v
    ]
    return "; ".join(moved)


def merge_run(
    state_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: dict,
    manifest: str | os.PathLike,
    counts: Sequence[dict[str, int]] = (),
) -> dict:
    """Merge the shards' tables with the previous catalogue into a new one.

    Removed images keep their rows (``status=removed``); ``changes`` and
    ``runs`` grow by this run's rows; ``duplicates`` is recomputed. Tables
    stay Arrow columns throughout (joins, filters, sorts: multi-threaded C++,
    no Python object per row), so a night's merge of a million images takes
    seconds. The whole catalogue is swapped in at once
    (:func:`biocodes.atomic.atomic_dir`), so a reader or a crash never sees
    half of it. Returns the new ``runs`` row.
    """
    from biocodes.atomic import atomic_dir
    from biocodes.history import changes_table
    from biocodes.similarity import duplicate_table

    current = {
        name: read_tables([Path(d) / f"{name}.parquet" for d in state_dirs], name)
        for name in SHARD_TABLES
    }
    # duplicates are recomputed, never read
    previous = {
        name: read_table(Path(out_dir) / f"{name}.parquet", name)
        for name in TABLES
        if name != "duplicates"
    }
    run_id, started = run_info(manifest)
    change_rows, carried = changes_table(previous, current, run_id)
    for name, rows in carried.items():
        current[name] = pa.concat_tables([current[name], rows])
    dup = config.get("duplicates", {})
    current["duplicates"] = duplicate_table(
        current["scenes"],
        current["images"],
        data_distance=dup.get("data_distance", 24),
        mixed_distance=dup.get("mixed_distance", 8),
    )
    current["changes"] = pa.concat_tables([previous["changes"], change_rows])
    run = run_row(
        run_id,
        started,
        config,
        current["images"],
        current["scenes"],
        change_rows,
        counts,
        previous["runs"].slice(max(0, previous["runs"].num_rows - 1)).to_pylist(),
    )
    current["runs"] = pa.concat_tables(
        [previous["runs"], pa.Table.from_pylist([run], schema=SCHEMAS["runs"])]
    )
    with atomic_dir(out_dir, keep=3) as new:
        for name in TABLES:
            write_atomic(sort_table(name, current[name]), new / f"{name}.parquet")
    return run


def run_row(
    run_id: str,
    started: str,
    config: dict,
    images: pa.Table,
    scenes: pa.Table,
    change_rows: pa.Table,
    counts: Sequence[dict[str, int]],
    previous_runs: list[dict],
) -> dict:
    """This run's ``runs`` row: counted from the merged tables' columns."""
    import json
    from datetime import UTC, datetime

    import pyarrow.compute as pc

    from biocodes.imagewalk import SPEC_VERSION

    def count(column: pa.ChunkedArray, value: str) -> int:
        return int(pc.sum(pc.equal(column, value)).as_py() or 0)

    versions = code_versions()
    status, kinds = images["status"], change_rows["change"]
    total = {
        k: sum(c.get(k, 0) for c in counts) for k in ("read", "rehashed", "reused")
    }
    live = pc.equal(scenes["status"], "ok")
    return {
        "run_id": run_id,
        "started": started,
        "finished": started  # reproducible: SOURCE_DATE_EPOCH fixes both
        if os.environ.get("SOURCE_DATE_EPOCH")
        else datetime.now(UTC).isoformat(timespec="seconds"),
        "config_sha256": config_sha256(config),
        "config": json.dumps(redact(config), sort_keys=True, default=str),
        "versions": json.dumps(versions, sort_keys=True),
        "versions_changed": _versions_changed(previous_runs, versions),
        "imagewalk_spec": SPEC_VERSION,
        "images": images.num_rows - count(status, "removed"),
        "images_ok": count(status, "ok"),
        "images_error": count(status, "error"),
        "images_removed": count(status, "removed"),
        "images_read": total["read"],
        "images_rehashed": total["rehashed"],
        "images_reused": total["reused"],
        "images_added": count(kinds, "added"),
        "images_changed": count(kinds, "changed"),
        "images_failed": count(kinds, "failed"),
        "scenes": int(pc.sum(live).as_py() or 0),
        "bytes_hashed": int(pc.sum(pc.filter(scenes["nbytes"], live)).as_py() or 0),
    }


def summary(catalogue_dir: str | os.PathLike) -> str:
    """A few lines for the end of a run: counts, failures, where the tables are."""
    out = Path(catalogue_dir)
    run = pq.read_table(out / "runs.parquet").to_pylist()[-1]
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    lines = [
        f"biocodes run {run['run_id']}: {run['images']} images "
        f"({run['images_ok']} ok, {run['images_error']} failed), "
        f"{run['scenes']} scenes, {run['bytes_hashed'] / 1e6:,.1f} MB of pixels",
        f"  pixels read for {run['images_read']} images, "
        f"{run['images_rehashed']} re-hashed as files, "
        f"{run['images_reused']} unchanged; "
        f"{run['images_added']} added, {run['images_changed']} changed, "
        f"{run['images_removed']} removed, {run['images_failed']} failed",
    ]
    if run["versions_changed"]:
        lines.append(
            f"  code versions changed since the last run: "
            f"{run['versions_changed']} (images re-read)"
        )
    lines += [
        f"  failed: {e['path']}: {e['error_type']}: {e['message']}" for e in errors[:20]
    ]
    if len(errors) > 20:
        lines.append(f"  ... and {len(errors) - 20} more in errors.parquet")
    lines.append(f"catalogue: {os.path.abspath(out)}/{{{','.join(TABLES)}}}.parquet")
    return "\n".join(lines)
