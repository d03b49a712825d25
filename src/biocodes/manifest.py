"""Scan repository roots into a manifest of images, each assigned to a shard.

A directory store (OME-Zarr, bioformats2raw) is one image, never thousands of
files. Shards are assigned by a hash of the image id, so an image stays in its
shard across runs and the number of shard jobs is known before the scan.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from biocodes.sources.zarr import is_zarr_store

DEFAULT_INCLUDE = (
    "*.tif",
    "*.tiff",
    "*.btf",
    "*.czi",
    "*.png",
    "*.dv",
    "*.nd2",
    "*.lif",
    "*.zarr",
)


@dataclass(frozen=True)
class ManifestRow:
    image_id: str
    root: str
    path: str  # POSIX, relative to the root
    abspath: str
    size: int
    mtime_ns: int
    is_store: bool
    shard: int


def image_id(root: str, path: str) -> str:
    """Stable id of an image: its root label and relative path, hashed."""
    key = f"{root}\0{path}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(key).hexdigest()[:16]


def shard_of(image: str, shards: int) -> int:
    return int(image, 16) % shards


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns)


def _store_stat(path: Path) -> tuple[int, int]:
    """Total size and newest mtime of the files of a directory store."""
    size = mtime = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(dirpath, f))
            size += st.st_size
            mtime = max(mtime, st.st_mtime_ns)
    return size, mtime


def scan_root(
    label: str,
    root: str | os.PathLike,
    shards: int,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
) -> Iterator[ManifestRow]:
    """Yield the images under one root (directories first, then their files)."""
    base = Path(root)
    for dirpath, dirs, files in os.walk(base):
        here = Path(dirpath)
        dirs.sort()
        stores = []
        for d in list(dirs):
            if is_zarr_store(here / d):
                stores.append(d)
                dirs.remove(d)  # a store is one image: do not descend
        for name in sorted(stores + files):
            full = here / name
            rel = full.relative_to(base).as_posix()
            is_store = name in stores
            if _matches(rel, exclude) or not (is_store or _matches(rel, include)):
                continue
            if is_store:
                size, mtime = _store_stat(full)
            else:
                st = full.stat()
                size, mtime = st.st_size, st.st_mtime_ns
            iid = image_id(label, rel)
            yield ManifestRow(
                iid, label, rel, str(full), size, mtime, is_store, shard_of(iid, shards)
            )


def scan(
    roots: Mapping[str, str],
    shards: int,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
) -> list[dict]:
    """All images of all roots, as dict rows, sorted by root and path."""
    rows = []
    for label in sorted(roots):
        found = scan_root(label, roots[label], shards, include, exclude)
        rows += [asdict(r) for r in found]
    rows.sort(key=lambda r: (r["root"], r["path"]))
    return rows


def from_file(path: str | os.PathLike, shards: int) -> list[dict]:
    """Rows for a user's list of paths (CSV, TSV or Parquet with a ``path`` column).

    Relative paths are relative to the list's own directory; the root label is
    ``manifest``.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        delimiter = "\t" if path.suffix in (".tsv", ".tab") else ","
        table = pacsv.read_csv(
            path, parse_options=pacsv.ParseOptions(delimiter=delimiter)
        )
    if "path" not in table.column_names:
        raise ValueError(f"{path}: manifest needs a 'path' column")
    rows = []
    for given in sorted(set(table.column("path").to_pylist())):
        full = (path.parent / given).resolve()
        if not full.exists():
            st_size, st_mtime, is_store = 0, 0, False
        elif full.is_dir():
            (st_size, st_mtime), is_store = _store_stat(full), True
        else:
            st = full.stat()
            st_size, st_mtime, is_store = st.st_size, st.st_mtime_ns, False
        iid = image_id("manifest", given)
        rows.append(
            asdict(
                ManifestRow(
                    iid,
                    "manifest",
                    given,
                    str(full),
                    st_size,
                    st_mtime,
                    is_store,
                    shard_of(iid, shards),
                )
            )
        )
    return rows


def build_manifest(
    out: str | os.PathLike,
    roots: Mapping[str, str],
    shards: int,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    manifest_file: str | None = None,
) -> int:
    """Scan (or read the user's list) and write the manifest Parquet atomically."""
    import pyarrow as pa

    from biocodes.catalogue import write_atomic

    rows = (
        from_file(manifest_file, shards)
        if manifest_file
        else scan(roots, shards, include, exclude)
    )
    schema = pa.schema(
        [
            ("image_id", pa.string()),
            ("root", pa.string()),
            ("path", pa.string()),
            ("abspath", pa.string()),
            ("size", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("is_store", pa.bool_()),
            ("shard", pa.int32()),
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    write_atomic(table.replace_schema_metadata(new_run()), out)
    return len(rows)


def new_run() -> dict[str, str]:
    """A run's id and start time. The scan starts every run, so it stamps both
    on the manifest and every later step reads them from there."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return {
        "run_id": f"{now:%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}",
        "started": now.isoformat(timespec="seconds"),
    }
