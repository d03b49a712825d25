"""A compact on-disk index of a catalogue's codes, so that ``similar``
answers without reading the catalogue into Python objects.

Per column that ``similar`` compares (the per-scene ISCC-SUM, the Data-Code,
ISCC-MIXED and the views' ISCC-IMAGE), the codes' bodies are packed as
uint64 words in a ``.npy`` file, memory-mapped at query time, beside a
Parquet file mapping each row to its scene (``image_id``, ``path``,
``scene_index``, ``code``)::

    <catalogue>/_index/<column>/<part>-<bits>.npy          (n, words) uint64
    <catalogue>/_index/<column>/<part>-<bits>.rows.parquet row k -> its scene

A search is exact: XOR and ``np.bitwise_count`` over the memory map in
blocks (bounded memory; ~20-30 ms per million 256-bit codes on this
loaded 2-core machine, see docs/performance.md), then
only the row groups holding a hit are read. ``part`` is one name per index
part (``all`` for a catalogue written as one file per table); a search reads
every part of a column.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from biocodes.repository.duplicates import code_bits, code_words

#: the index folder inside a catalogue (not a table: a reader of the
#: catalogue's tables never sees it)
INDEX_DIR = "_index"
#: the columns indexed, and the table each comes from
COLUMNS = {
    "iscc_code": "scenes",
    "data_code": "scenes",
    "iscc_mixed": "scenes",
    "iscc_image": "views",
    # opt-in (views.plane_images): the ISCC-IMAGE of every plane, found by
    # a picture; its rows name the plane too
    "plane_image": "plane_images",
}
#: the code column of each indexed table's rows
SOURCE = {"plane_image": "iscc_image"}
#: rows per row group of a ``.rows.parquet`` (a hit reads one group)
ROW_GROUP = 16_384
#: codes compared per numpy step (bounds a query's memory to a few MiB)
BLOCK = 262_144
#: bumped when the index layout changes: an older index is rebuilt
INDEX_FORMAT = 2
ROWS_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("scene_index", pa.int32()),
        ("code", pa.string()),
    ]
)
#: rows of the plane images' index: which plane, too
PLANE_ROWS_SCHEMA = pa.schema(
    [*ROWS_SCHEMA, ("z", pa.int64()), ("c", pa.int64()), ("t", pa.int64())]
)


def rows_schema(column: str) -> pa.Schema:
    """The schema of ``column``'s index rows."""
    return PLANE_ROWS_SCHEMA if column == "plane_image" else ROWS_SCHEMA


def table_path(catalogue_dir: str | os.PathLike, name: str) -> Path | None:
    """A table of the catalogue: one Parquet file or a folder of partitions
    (``pq.read_table`` reads both); None if the catalogue has neither."""
    base = Path(catalogue_dir)
    for path in (base / f"{name}.parquet", base / name):
        if path.exists():
            return path
    return None


def column_rows(column: str, scenes: pa.Table, views: pa.Table | None) -> pa.Table:
    """The rows to index for ``column`` (:func:`rows_schema`): live scenes'
    codes, or the views (or plane images: ``views``) of live scenes with
    their scene's path, sorted by image, scene (and view or plane), nulls
    left out."""
    ok = pc.fill_null(
        pc.and_(pc.equal(scenes["status"], "ok"), pc.is_valid(scenes["iscc_code"])),
        False,
    )
    keep = ["image_id", "path", "scene_index"]
    schema = rows_schema(column)
    source = SOURCE.get(column, column)
    if COLUMNS[column] == "scenes":
        live = scenes.select([*keep, column]).filter(ok)
        rows = live.sort_by([("image_id", "ascending"), ("scene_index", "ascending")])
    elif views is None or not views.num_rows:
        return schema.empty_table()
    else:
        keys = scenes.select(keep).filter(ok)
        order = ["view_index"] if column == "iscc_image" else ["z", "c", "t"]
        extra = [] if column == "iscc_image" else ["z", "c", "t"]
        rows = (
            views.select(["image_id", "scene_index", *order, source])
            .join(keys, ["image_id", "scene_index"], join_type="inner")
            .sort_by([(k, "ascending") for k in ("image_id", "scene_index", *order)])
            .select([*keep, source, *extra])
        )
    rows = rows.filter(pc.is_valid(rows[source]))
    return rows.rename_columns(schema.names).cast(schema)


def _by_length(rows: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """The rows split by code length (a column holds one length in practice;
    codes of another length are never within a distance of each other)."""
    if not rows.num_rows:
        return
    lengths = pc.utf8_length(rows["code"])
    for length in sorted(pc.unique(lengths).to_pylist()):
        part = rows.filter(pc.equal(lengths, length))
        _value, bits = code_bits(part["code"][0].as_py())
        yield bits, part


def write_index(
    catalogue_dir: str | os.PathLike,
    previous: str | os.PathLike | None = None,
    same: Callable[[str], bool] | None = None,
    written: Callable[[str], Path | None] | None = None,
) -> None:
    """Write the catalogue's code index into ``catalogue_dir/_index``: one
    index part per partition of its tables (``part-NNNN``), or one part
    (``all``) for a catalogue of single-file tables.

    ``previous``: the catalogue before this merge. A part for which
    ``same(part)`` holds (its partitions of ``scenes``, ``views`` and
    ``plane_images`` are the previous catalogue's) is linked from the
    previous index, not read. ``written(part)``: the index a shard job
    wrote beside its tables (see :func:`shard_index`) when the part's
    partitions are that shard's files, linked too. So a night writes the
    index parts of the partitions it rewrote itself."""
    out = Path(catalogue_dir) / INDEX_DIR
    old = None if previous is None else Path(previous) / INDEX_DIR
    if old is not None and not is_current(old):
        old = None
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    if old is not None:  # the catalogue is swapped in whole: no half index
        _link_file(old / "FORMAT", out / "FORMAT")
    else:
        (out / "FORMAT").write_text(f"{INDEX_FORMAT}\n")
    _part_files.cache_clear()  # folders are listed once per merge
    for part, files in _partitions(Path(catalogue_dir)):
        if old is not None and same is not None and same(part):
            _link_part(old, out, part)
            continue
        shard = None if written is None else written(part)
        if shard is not None:
            _link_part(shard, out, SHARD_PART, as_part=part)
            continue
        write_part(out, part, files)


def _partitions(catalogue: Path) -> Iterator[tuple[str, dict[str, Path | None]]]:
    """(index part name, the table files it indexes) of a catalogue: one per
    partition of ``scenes``, or ``all`` for single-file tables."""
    tables = sorted({*COLUMNS.values()})
    folder = catalogue / "scenes"
    if not folder.is_dir():
        if table_path(catalogue, "scenes") is not None:
            yield "all", {t: table_path(catalogue, t) for t in tables}
        return
    for path in sorted(folder.glob("part-*.parquet")):
        files = {t: catalogue / t / path.name for t in tables}
        yield path.stem, {t: f if f.is_file() else None for t, f in files.items()}


def write_part(out: Path, part: str, files: dict[str, Path | None]) -> None:
    """Index part ``part`` of every column from one partition's table files
    (``files``: table name -> file, None if absent): its scenes read once,
    each view table once, every code decoded (decoding a partition's codes
    costs less than reading the previous part's to copy them)."""
    if files.get("scenes") is None:
        return
    scene_columns = [c for c, t in COLUMNS.items() if t == "scenes"]
    base = ["image_id", "path", "scene_index", "status"]
    scenes = pq.read_table(
        files["scenes"], columns=[*base, *dict.fromkeys(["iscc_code", *scene_columns])]
    )
    for column, table in COLUMNS.items():
        views = None
        other = None if table == "scenes" else files.get(table)
        if other is not None:
            views = pq.read_table(other, columns=_other_columns(column))
        write_rows(out, {column: column_rows(column, scenes, views)}, part)
        del views
    del scenes
    pa.default_memory_pool().release_unused()


def _link_part(old: Path, out: Path, part: str, as_part: str | None = None) -> None:
    """Every file of index part ``part`` hard-linked from ``old`` (named
    ``as_part`` in ``out``)."""
    for column in COLUMNS:
        for path in _part_files(old / column).get(part, []):
            (out / column).mkdir(exist_ok=True)
            name = path.name if as_part is None else as_part + path.name[len(part) :]
            _link_file(path, out / column / name)


@functools.lru_cache(maxsize=64)
def _part_files(folder: Path) -> dict[str, list[Path]]:
    """The files of an index column's folder by part (``part-0003-256.npy``
    is part ``part-0003``): listed once, not once per part (10M images are
    1,250 parts in each of five folders)."""
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            part = path.name.split(".", 1)[0].rsplit("-", 1)[0]
            found.setdefault(part, []).append(path)
    return found


#: the part name of the index a shard job writes beside its tables
SHARD_PART = "shard"
#: the table files a shard's index part was made from
SOURCE_FILE = "SOURCE.json"


def write_shard_index(state: Path) -> None:
    """The index part of a shard's tables, written by its job beside them
    (``<state>/_index``) as the merge would write it, with the size, mtime
    and inode of each table file it was made from: the merge links it when
    it links those very files as the partition (see :func:`shard_index`)."""
    import json

    files = {t: state / f"{t}.parquet" for t in sorted({*COLUMNS.values()})}
    out = state / INDEX_DIR
    out.mkdir(exist_ok=True)
    write_part(
        out, SHARD_PART, {t: f if f.is_file() else None for t, f in files.items()}
    )
    (out / SOURCE_FILE).write_text(json.dumps(_sources(files)))
    (out / "FORMAT").write_text(f"{INDEX_FORMAT}\n")


def _sources(files: dict[str, Path]) -> dict[str, list[int] | None]:
    """Size, mtime and inode of each file (None if absent)."""
    from biocodes.repository.tables import file_identity

    return {name: file_identity(path) for name, path in files.items()}


def shard_index(state: Path) -> Path | None:
    """A shard's own index part (:func:`write_shard_index`), if it was made
    from the table files the state holds now, in this index format."""
    import json

    index = state / INDEX_DIR
    if not is_current(index):
        return None
    try:
        made_from = json.loads((index / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    files = {t: state / f"{t}.parquet" for t in made_from}
    if set(made_from) != {*COLUMNS.values()} or _sources(files) != made_from:
        return None
    return index


def _other_columns(column: str) -> list[str]:
    """The columns of a view table that ``column``'s index reads."""
    if column == "plane_image":
        return ["image_id", "scene_index", "z", "c", "t", "iscc_image"]
    return ["image_id", "scene_index", "view_index", column]


def write_rows(out: Path, rows: dict[str, pa.Table], part: str = "all") -> None:
    """The index files of ``rows`` (per column, see :func:`column_rows`)
    under ``out``."""
    from biocodes.infra.atomic import atomic_path

    for column, table in rows.items():
        folder = out / column
        folder.mkdir(parents=True, exist_ok=True)
        for bits, group in _by_length(table):
            stem = f"{part}-{bits}"
            words = code_words(group["code"])[0]
            with atomic_path(folder / f"{stem}.npy") as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, np.ascontiguousarray(words), allow_pickle=False)
            with atomic_path(folder / f"{stem}.rows.parquet") as tmp:
                pq.write_table(group, tmp, row_group_size=ROW_GROUP, compression="zstd")
    if not (out / "FORMAT").exists():
        (out / "FORMAT").write_text(f"{INDEX_FORMAT}\n")


def is_current(index: Path) -> bool:
    """Whether the index folder ``index`` is complete and of this format
    (an older one is rebuilt, never read)."""
    return _format_of(index) == INDEX_FORMAT


def _format_of(index: Path) -> int | None:
    try:
        return int((index / "FORMAT").read_text())
    except (OSError, ValueError):
        return None


def _link_file(source: Path, dest: Path) -> None:
    """A hard link (a copy where links fail)."""
    try:
        os.link(os.path.realpath(source), dest)
    except OSError:
        shutil.copyfile(source, dest)


# ---------------------------------------------------------------- search


@dataclass
class Part:
    """One index part of a column: the packed codes (a memory map, or an
    array built in memory for a catalogue written before the index) and
    where their rows are."""

    words: np.ndarray
    bits: int
    rows_path: Path | None = None
    rows_table: pa.Table | None = None

    def rows(self, take: np.ndarray) -> pa.Table:
        """The rows ``take`` (ascending row numbers), reading only the row
        groups that hold them."""
        if self.rows_table is not None:
            return self.rows_table.take(pa.array(take, pa.int64()))
        assert self.rows_path is not None
        f = pq.ParquetFile(self.rows_path)
        sizes = [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)]
        starts = np.cumsum([0, *sizes])
        group = np.searchsorted(starts, take, side="right") - 1
        parts = []
        for g in np.unique(group):
            table = f.read_row_group(int(g))
            local = take[group == g] - starts[g]
            parts.append(table.take(pa.array(local, pa.int64())))
        return pa.concat_tables(parts) if parts else ROWS_SCHEMA.empty_table()


def open_parts(catalogue_dir: str | os.PathLike, column: str) -> list[Part]:
    """The index parts of ``column``: memory-mapped from ``_index`` when the
    catalogue has one, else built in memory from its tables (a catalogue
    merged before the index existed; nothing is written)."""
    base = Path(catalogue_dir) / INDEX_DIR
    if is_current(base):
        parts = []
        for npy in sorted((base / column).glob("*.npy")):
            bits = int(npy.stem.rsplit("-", 1)[1])
            words = np.load(npy, mmap_mode="r")
            rows = npy.with_name(npy.name[: -len(".npy")] + ".rows.parquet")
            parts.append(Part(words, bits, rows_path=rows))
        return parts
    return _parts_in_memory(catalogue_dir, column)


def _parts_in_memory(catalogue_dir: str | os.PathLike, column: str) -> list[Part]:
    table = COLUMNS[column]
    scenes_path = table_path(catalogue_dir, "scenes")
    if scenes_path is None:
        return []
    scene_cols = ["image_id", "path", "scene_index", "status", "iscc_code"]
    if table == "scenes" and column not in scene_cols:
        scene_cols.append(column)
    scenes = pq.read_table(scenes_path, columns=scene_cols)
    views = None
    other = None if table == "scenes" else table_path(catalogue_dir, table)
    if other is not None:
        views = pq.read_table(other, columns=_other_columns(column))
    rows = column_rows(column, scenes, views)
    return [
        Part(code_words(group["code"])[0], bits, rows_table=group)
        for bits, group in _by_length(rows)
    ]


def query_words(code: str) -> tuple[np.ndarray, int]:
    """A code's body as uint64 words, as the index packs it."""
    return code_words(pa.array([code]))


def distances(words: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distance of each packed code to ``query`` (one row of words)."""
    d = np.bitwise_count(words[:, 0] ^ query[0]).astype(np.uint16)
    for w in range(1, words.shape[1]):
        d += np.bitwise_count(words[:, w] ^ query[w])
    return d


def search_words(
    words: np.ndarray,
    query: np.ndarray,
    max_distance: int | None = None,
    k: int | None = None,
    block: int = BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """(row numbers, distances) of the codes within ``max_distance`` of
    ``query`` or (with ``k``) the ``k`` nearest of them, nearest first, ties
    by row number; exact (every code is compared), in blocks of
    :data:`BLOCK` rows so a memory map is never loaded whole."""
    rows_found: list[np.ndarray] = []
    dist_found: list[np.ndarray] = []
    for start in range(0, len(words), block):
        d = distances(np.asarray(words[start : start + block]), query)
        keep = np.ones(len(d), bool) if max_distance is None else d <= max_distance
        hit = np.flatnonzero(keep)
        if k is not None and len(hit) > k:
            # the k nearest of this block (ties by row): all a top k needs
            kth = np.partition(d[hit], k - 1)[k - 1]
            below = hit[d[hit] < kth]
            tied = hit[d[hit] == kth][: k - len(below)]
            hit = np.sort(np.concatenate([below, tied]))
        rows_found.append(hit + start)
        dist_found.append(d[hit])
    if not rows_found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = np.concatenate(rows_found).astype(np.int64)
    dist = np.concatenate(dist_found).astype(np.int64)
    order = np.lexsort((rows, dist))
    if k is not None:
        order = order[:k]
    return rows[order], dist[order]


def search(
    catalogue_dir: str | os.PathLike,
    column: str,
    code: str,
    max_distance: int | None = None,
    k: int | None = None,
    parts: list[Part] | None = None,
) -> list[dict]:
    """Rows of the index of ``column`` (``image_id``, ``path``,
    ``scene_index``, ``code``, ``distance``) within ``max_distance`` bits of
    ``code`` or its ``k`` nearest, nearest first. ``iscc_code`` matches only
    the same code (identical pixels)."""
    if parts is None:
        parts = open_parts(catalogue_dir, column)
    query, bits = query_words(code)
    if column == "iscc_code":
        max_distance = 0
    found: list[tuple[int, int, dict]] = []
    for number, part in enumerate(parts):
        if part.bits != bits or not len(part.words):
            continue
        rows, dist = search_words(part.words, query[0], max_distance, k)
        if not len(rows):
            continue
        order = np.argsort(rows, kind="stable")
        table = part.rows(rows[order])
        for d, row, r in zip(dist[order], rows[order], table.to_pylist(), strict=True):
            if column == "iscc_code" and r["code"] != code:
                continue  # same body, another header
            found.append((int(d), number, {**r, "distance": int(d), "_row": int(row)}))
    found.sort(key=lambda x: (x[0], x[1], x[2]["_row"]))
    if k is not None:
        found = found[:k]
    out = []
    for _d, _n, r in found:
        r.pop("_row")
        out.append(r)
    return out


def has_codes(catalogue_dir: str | os.PathLike, column: str) -> bool:
    """Whether the catalogue holds any code of ``column``."""
    return any(len(p.words) for p in open_parts(catalogue_dir, column))
