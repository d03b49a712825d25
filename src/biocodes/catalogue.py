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
    "runs": pa.schema(
        [
            ("run_id", S),
            ("started", S),
            ("finished", S),
            ("config_sha256", S),
            ("versions", S),
            ("imagewalk_spec", S),
            ("images", I64),
            ("images_ok", I64),
            ("images_error", I64),
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
    "runs": ["started", "run_id"],
}

TABLES = tuple(SCHEMAS)


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


def merge_run(
    shard_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: dict,
    manifest: str | os.PathLike,
) -> dict[str, Path]:
    """Merge shard tables into the catalogue and append a new ``runs`` row (id,
    times, config hash, versions, counts). Each shard table is read once."""
    import json
    from datetime import UTC, datetime

    from biocodes.imagewalk import SPEC_VERSION

    tables = {
        name: read_tables([Path(d) / f"{name}.parquet" for d in shard_dirs], name)
        for name in TABLES
        if name != "runs"
    }
    started = datetime.fromtimestamp(os.stat(manifest).st_mtime, UTC)
    finished = datetime.now(UTC)
    digest = config_sha256(config)
    status = tables["images"].column("status").to_pylist()
    run = {
        "run_id": f"{finished:%Y%m%dT%H%M%SZ}-{digest[:8]}",
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "config_sha256": digest,
        "versions": json.dumps(code_versions(), sort_keys=True),
        "imagewalk_spec": SPEC_VERSION,
        "images": len(status),
        "images_ok": status.count("ok"),
        "images_error": status.count("error"),
        "scenes": tables["scenes"].num_rows,
        "bytes_hashed": sum(tables["scenes"].column("nbytes").to_pylist()),
    }
    out = Path(out_dir)
    written = {}
    for name, table in tables.items():
        rows = table.to_pylist()
        if "run_id" in SCHEMAS[name].names:
            for r in rows:
                r["run_id"] = run["run_id"]
        written[name] = write_atomic(to_table(name, rows), out / f"{name}.parquet")
    runs_path = out / "runs.parquet"
    previous = pq.read_table(runs_path).to_pylist() if runs_path.exists() else []
    written["runs"] = write_atomic(to_table("runs", [*previous, run]), runs_path)
    return written


def summary(catalogue_dir: str | os.PathLike) -> str:
    """A few lines for the end of a run: counts, failures, where the tables are."""
    out = Path(catalogue_dir)
    run = pq.read_table(out / "runs.parquet").to_pylist()[-1]
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    lines = [
        f"biocodes run {run['run_id']}: {run['images']} images "
        f"({run['images_ok']} ok, {run['images_error']} failed), "
        f"{run['scenes']} scenes, {run['bytes_hashed'] / 1e6:,.1f} MB of pixels hashed",
    ]
    lines += [
        f"  failed: {e['path']}: {e['error_type']}: {e['message']}" for e in errors[:20]
    ]
    if len(errors) > 20:
        lines.append(f"  ... and {len(errors) - 20} more in errors.parquet")
    lines.append(f"catalogue: {out.resolve()}/{{{','.join(TABLES)}}}.parquet")
    return "\n".join(lines)
