"""The catalogue's tables: their schemas, sort keys, atomic writes and reads.

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
TS = pa.timestamp("s", tz="UTC")

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
            # metadata, where the reader gives it; never part of a code
            ("physical_size_x", pa.float64()),
            ("physical_size_y", pa.float64()),
            ("physical_size_z", pa.float64()),
            ("physical_unit_x", S),
            ("physical_unit_y", S),
            ("physical_unit_z", S),
            ("channel_names", pa.list_(S)),
            ("acquisition_date", S),
            # HCS plates: where the field is (null for other images)
            ("plate", S),
            ("well", S),
            ("field", I32),
            ("acquisition", I64),
            # zarr stores: chunks absent from the store, read as the fill
            # value (null for other formats)
            ("chunks_absent", I64),
            # xxh3-64 of each plane's canonical bytes, 8 bytes per plane in
            # IMAGEWALK order (Z outer, C, T inner); null where not computed
            ("plane_digests", pa.binary()),
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
    # opt-in (views.plane_images): the ISCC-IMAGE of every plane
    "plane_images": pa.schema(
        [
            ("image_id", S),
            ("scene_index", I32),
            ("z", I64),
            ("c", I64),
            ("t", I64),
            ("iscc_image", S),
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
            # added later: for failed and still_failing, the run of the first
            # failure in this spell
            ("failing_since", S),
            # for changed: which planes differ ("1 of 8 planes differs: z=2
            # c=1 t=0"), from the scenes' plane digests
            ("planes_changed", S),
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
            ("started", TS),
            ("finished", TS),
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
            # added later: see run_figures
            ("images_touched", I64),
            ("images_removed_total", I64),
            ("scenes_read", I64),
            ("bytes_total", I64),
            ("files_skipped", I64),
            # the reader walk rules (sources.base.WALK_RULES); null before 2
            ("walk_rules", S),
            ("images_recovered", I64),
            ("images_still_failing", I64),
            ("images_in_progress", I64),
            ("images_refused", I64),
        ]
    ),
}

SORT_KEYS: dict[str, list[str]] = {
    "images": ["root", "path"],
    "scenes": ["image_id", "scene_index"],
    "simprints": ["image_id", "scene_index", "offset"],
    "views": ["image_id", "scene_index", "view_index"],
    "plane_images": ["image_id", "scene_index", "z", "c", "t"],
    "errors": ["image_id", "scene_index", "stage", "message"],
    "files": ["image_id", "path"],
    "changes": ["run_id", "root", "path"],
    "duplicates": ["kind", "group_id", "image_id", "scene_index"],
    # a stable sort: runs started in the same second keep the order they ran in
    "runs": ["started"],
}

TABLES = tuple(SCHEMAS)
#: tables each shard computes; the merge adds changes, duplicates and runs
SHARD_TABLES = ("images", "scenes", "simprints", "views", "errors", "files")
SHARD_TABLES += ("plane_images",)


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


def write_atomic(
    table: pa.Table | pa.RecordBatchReader, path: str | os.PathLike
) -> Path:
    """Write Parquet (zstd) to a temporary sibling, then rename it into place.
    A ``RecordBatchReader`` is written one row group per batch, so a table
    never has to be held whole (see :func:`sorted_batches`)."""
    from biocodes.infra.atomic import atomic_path

    with atomic_path(path) as tmp:
        if isinstance(table, pa.Table):
            pq.write_table(table, tmp, compression="zstd", write_statistics=True)
        else:
            with pq.ParquetWriter(
                tmp, table.schema, compression="zstd", write_statistics=True
            ) as writer:
                for batch in table:
                    writer.write_batch(batch)
    return Path(path)


#: rows per row group of a catalogue table the merge writes: the sorted rows
#: are taken and written one row group at a time (never a sorted copy of the
#: whole table), and the layout depends only on the rows, so equal contents
#: write equal bytes whichever way they were put together
ROW_GROUP = 131_072


def sorted_batches(name: str, table: pa.Table) -> pa.RecordBatchReader:
    """``table`` in the fixed schema of ``name``, sorted by its keys, as
    batches of :data:`ROW_GROUP` rows for :func:`write_atomic`.

    Columns are combined one at a time while the chunked input is released
    (pass a table nothing else holds), then each batch is taken from the
    sort order as it is written: about one copy of the table is alive, not
    three."""
    import pyarrow.compute as pc

    schema = SCHEMAS[name]
    table = table.select(schema.names).cast(schema)
    schema = schema.with_metadata({PARTITION_MARK: name})
    columns = []
    while table.num_columns:  # taking from one chunk is ~10x faster
        columns.append(table.column(0).combine_chunks())
        table = table.remove_column(0)
    del table
    whole = pa.Table.from_arrays(columns, schema=schema)
    del columns
    keys = [(k, "ascending") for k in SORT_KEYS[name]]
    order = pc.sort_indices(whole.select(SORT_KEYS[name]), sort_keys=keys)

    def batches() -> Iterable[pa.RecordBatch]:
        for start in range(0, whole.num_rows, ROW_GROUP):
            part = whole.take(order.slice(start, ROW_GROUP))
            yield from part.combine_chunks().to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


#: schema metadata of a file written by :func:`sorted_batches`: a partition
#: as the merge writes it (the fixed schema, sorted, in row groups of
#: :data:`ROW_GROUP` rows), which the merge may link instead of rewriting
PARTITION_MARK = "biocodes.partition"


def file_identity(path: str | os.PathLike) -> list[int] | None:
    """A file's size, mtime and inode (None if absent): equal for a hard
    link of it, so a file made from another is trusted only while that
    other is still the very file it was made from."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def is_partition(path: str | os.PathLike, name: str) -> bool:
    """Whether the Parquet file at ``path`` is a partition of table ``name``
    exactly as the merge would write it from its rows (see
    :data:`PARTITION_MARK`): only its footer is read."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid):
        return False
    mark = (schema.metadata or {}).get(PARTITION_MARK.encode())
    return mark == name.encode() and schema.remove_metadata().equals(SCHEMAS[name])


def sort_table(name: str, table: pa.Table) -> pa.Table:
    """An Arrow table in the fixed schema of ``name``, sorted by its keys, in
    one chunk: equal contents always write equal bytes. At most two copies
    are alive at once (pass a table nothing else holds, to free the first)."""
    import pyarrow.compute as pc

    schema = SCHEMAS[name]
    table = table.select(schema.names).cast(schema).combine_chunks()
    if table.num_rows:
        keys = [(k, "ascending") for k in SORT_KEYS[name]]
        table = table.take(pc.sort_indices(table, sort_keys=keys))
    return table.combine_chunks()


def read_tables(
    paths: Sequence[str | os.PathLike],
    name: str,
    columns: Sequence[str] | None = None,
    filter: object = None,
) -> pa.Table:
    """Concatenate one table from several shard files (missing files are
    empty; columns added since a file was written are null), in their order.
    One dataset read: files are read in parallel. ``filter``: a pyarrow
    dataset expression."""
    schema = _schema(name, columns)
    found = [str(p) for p in paths if Path(p).exists()]
    if not found:
        return schema.empty_table()
    return pq.read_table(
        found, schema=schema, columns=schema.names, partitioning=None, filters=filter
    )


def _schema(name: str, columns: Sequence[str] | None) -> pa.Schema:
    schema = SCHEMAS[name]
    return schema if columns is None else pa.schema([schema.field(c) for c in columns])


def read_table(
    path: str | os.PathLike,
    name: str,
    columns: Sequence[str] | None = None,
    filter: object = None,
) -> pa.Table:
    """One table file in the current schema (or its ``columns``); empty if
    it does not exist. ``filter``: a pyarrow dataset expression."""
    schema = _schema(name, columns)
    if not Path(path).exists():
        return schema.empty_table()
    return pq.read_table(path, schema=schema, columns=schema.names, filters=filter)


# The layout: each table is a directory. The shard tables hold one file per
# shard's partition of the images (``<table>/part-NNNN.parquet``);
# ``changes`` and ``runs`` grow by one file per run
# (``<table>/run-<run_id>.parquet``); ``duplicates`` is derived whole
# (``duplicates/part-0000.parquet``).


def part_file(k: int) -> str:
    """The file name of partition ``k`` (shard ``k``'s images) of a table."""
    return f"part-{k:04d}.parquet"


def run_file(run_id: str) -> str:
    """The file name of one run's rows of ``changes`` and ``runs``: run ids
    are start times, so the files sort in the order the runs started."""
    return f"run-{run_id}.parquet"


def table_files(catalogue_dir: str | os.PathLike, name: str) -> list[Path]:
    """The files of one catalogue table, in order: the Parquet files of its
    directory (a partitioned catalogue), or its single file (a catalogue
    written before partitions); none if it does not exist yet."""
    base = Path(catalogue_dir)
    folder = base / name
    if folder.is_dir():
        return sorted(
            p
            for p in folder.iterdir()
            if p.suffix == ".parquet" and not p.name.startswith((".", "_"))
        )
    single = base / f"{name}.parquet"
    return [single] if single.is_file() else []


def read_catalogue_table(
    catalogue_dir: str | os.PathLike,
    name: str,
    columns: Sequence[str] | None = None,
    filter: object = None,
) -> pa.Table:
    """One table of a catalogue in the current schema (or its ``columns``),
    whether it is a directory of partitions or an older single file; empty
    if it does not exist yet. ``filter``: a pyarrow dataset expression."""
    schema = _schema(name, columns)
    files = [str(p) for p in table_files(catalogue_dir, name)]
    if not files:
        return schema.empty_table()
    return pq.read_table(
        files, schema=schema, columns=schema.names, filters=filter, partitioning=None
    )


def is_catalogue(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a catalogue (either layout): its images and runs."""
    return all(table_files(path, n) for n in ("images", "runs"))


def read_catalogue(catalogue_dir: str | os.PathLike, name: str) -> list[dict]:
    """One table of a catalogue as rows, each file as it was written (an
    older file may lack columns added since); empty if it does not exist yet."""
    return [
        r
        for p in table_files(catalogue_dir, name)
        for r in pq.read_table(p).to_pylist()
    ]
