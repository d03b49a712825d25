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
            ("codec", S),
            ("decoder", S),
            ("lossy", pa.bool_()),
            ("planes", I64),
            ("nbytes", I64),
            ("iscc_code", S),
            ("data_code", S),
            ("instance_code", S),
            ("iscc_mixed", S),
            ("status", S),
            ("error", S),
            # HCS plates: where the field is (null for other images)
            ("plate", S),
            ("well", S),
            ("field", I32),
            ("acquisition", I64),
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
    # the member files of images made of several files (filesets)
    "files": pa.schema(
        [
            ("image_id", S),
            ("path", S),
            ("size", I64),
            ("mtime_ns", I64),
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
    "files": ["image_id", "path"],
    "changes": ["run_id", "root", "path"],
    "duplicates": ["kind", "group_id", "image_id", "scene_index"],
    "runs": ["started", "run_id"],
}

TABLES = tuple(SCHEMAS)
#: tables each shard computes; the merge adds changes, duplicates and runs
SHARD_TABLES = ("images", "scenes", "simprints", "views", "errors", "files")


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


def read_tables(paths: Sequence[str | os.PathLike], name: str) -> pa.Table:
    """Concatenate one table from several shard files."""
    parts = [pq.read_table(p, schema=SCHEMAS[name]) for p in paths]
    if not parts:
        return SCHEMAS[name].empty_table()
    return pa.concat_tables(parts)


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
    # decoders: lossy pixels (JPEG, JPEG 2000) decode differently in each
    "imagecodecs",
    "pypng",
    "bioio-bioformats",
    "bioio-dv",
    "bioio-nd2",
    "nd2",
    "bioio-lif",
    "readlif",
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
    from biocodes.bioformats import BIOFORMATS_VERSION

    found["bioformats-jar"] = BIOFORMATS_VERSION
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
    ``runs`` grow by this run's rows; ``duplicates`` is recomputed. The whole
    catalogue is swapped in at once (:func:`biocodes.atomic.atomic_dir`), so a
    reader or a crash never sees half of it. Returns the new ``runs`` row.
    """
    import json
    from datetime import UTC, datetime

    from biocodes.atomic import atomic_dir
    from biocodes.history import changes
    from biocodes.imagewalk import SPEC_VERSION
    from biocodes.similarity import duplicate_rows

    current = {
        name: read_tables(
            [Path(d) / f"{name}.parquet" for d in state_dirs], name
        ).to_pylist()
        for name in SHARD_TABLES
    }
    # duplicates are recomputed, never read
    previous = {n: read_catalogue(out_dir, n) for n in TABLES if n != "duplicates"}
    run_id, started = run_info(manifest)
    change_rows, carried = changes(
        {name: previous[name] for name in SHARD_TABLES}, current, run_id
    )
    for name in SHARD_TABLES:
        current[name] += carried[name]
    dup = config.get("duplicates", {})
    current["duplicates"] = duplicate_rows(
        current["scenes"],
        current["images"],
        data_distance=dup.get("data_distance", 24),
        mixed_distance=dup.get("mixed_distance", 8),
    )
    current["changes"] = previous["changes"] + change_rows
    versions = code_versions()
    status = [i["status"] for i in current["images"]]
    kinds = [c["change"] for c in change_rows]
    total = {
        k: sum(c.get(k, 0) for c in counts) for k in ("read", "rehashed", "reused")
    }
    live = [s for s in current["scenes"] if s["status"] == "ok"]
    run = {
        "run_id": run_id,
        "started": started,
        "finished": started  # reproducible: SOURCE_DATE_EPOCH fixes both
        if os.environ.get("SOURCE_DATE_EPOCH")
        else datetime.now(UTC).isoformat(timespec="seconds"),
        "config_sha256": config_sha256(config),
        "config": json.dumps(redact(config), sort_keys=True, default=str),
        "versions": json.dumps(versions, sort_keys=True),
        "versions_changed": _versions_changed(previous["runs"], versions),
        "imagewalk_spec": SPEC_VERSION,
        "images": len(status) - status.count("removed"),
        "images_ok": status.count("ok"),
        "images_error": status.count("error"),
        "images_removed": status.count("removed"),
        "images_read": total["read"],
        "images_rehashed": total["rehashed"],
        "images_reused": total["reused"],
        "images_added": kinds.count("added"),
        "images_changed": kinds.count("changed"),
        "images_failed": kinds.count("failed"),
        "scenes": len(live),
        "bytes_hashed": sum(s["nbytes"] for s in live),
    }
    current["runs"] = [*previous["runs"], run]
    with atomic_dir(out_dir, keep=3) as new:
        for name in TABLES:
            write_atomic(to_table(name, current[name]), new / f"{name}.parquet")
    return run


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
