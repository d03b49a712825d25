"""Scan repository roots into a manifest of images, each assigned to a shard.

A directory store (OME-Zarr, bioformats2raw) is one image, never thousands of
files. A root may also be a URL (``s3://``, ``http(s)://``): it is scanned for
the OME-Zarr stores under it (see :mod:`biocodes.infra.remote`). Shards are
assigned by a hash of the image id, so an image stays in its shard across
runs and the number of shard jobs is known before the scan.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from biocodes.infra.errors import (
    BiocodeError,
    EmptyImageError,
    OutsideRootsError,
    UnreadableError,
    display_path,
    path_error,
)
from biocodes.infra.limits import Limits
from biocodes.infra.location import Location
from biocodes.infra.remote import ZARR_META, RemoteStore, is_remote, url_name
from biocodes.sources import locate
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
    "*.ozx",  # a zipped OME-Zarr
    "*.companion.ome",
)


@dataclass(frozen=True)
class ManifestRow:
    image_id: str
    root: str
    path: str  # POSIX, relative to the root, as one printable line
    abspath: str  # as the OS names it (may hold any byte: surrogateescape)
    size: int
    mtime_ns: int
    is_store: bool
    shard: int
    #: why the scan refuses this entry (it becomes an error row, not a read)
    error: str | None = None
    error_type: str | None = None
    #: a fileset's members, as JSON ``[[path relative to the root, size,
    #: mtime_ns], ...]`` in raw-code order; None for a single file or store
    members: str | None = None


def image_id(root: str, path: str) -> str:
    """Stable id of an image: its root label and relative path, hashed."""
    key = f"{root}\0{path}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(key).hexdigest()[:16]


def shard_of(image: str, shards: int) -> int:
    return int(image, 16) % shards


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """Whether the file's name, or its path relative to the root, matches one
    of the shell patterns (as :func:`fnmatch.fnmatch` each, in one regex:
    the scan asks this twice per file)."""
    if not patterns:
        return False
    match = _pattern(tuple(patterns)).match
    return match(rel.rsplit("/", 1)[-1]) is not None or match(rel) is not None


@functools.lru_cache(maxsize=64)
def _pattern(patterns: tuple[str, ...]) -> re.Pattern:
    return re.compile(
        "|".join(fnmatch.translate(os.path.normcase(p)) for p in patterns)
    )


class Confinement:
    """Which paths may be read: those that resolve inside a configured root.

    A symlink whose target lies outside every root is refused unless
    ``follow_symlinks`` is set; loops and dangling links are refused always.
    """

    def __init__(self, roots: Mapping[str, str], follow_symlinks: bool = False):
        local = {k: r for k, r in roots.items() if not is_remote(r)}
        self.roots = {label: os.path.realpath(r) for label, r in local.items()}
        #: the roots as written, for paths named through them (a user's list)
        self.given = {label: os.path.abspath(r) for label, r in local.items()}
        self.given.update({k: r.rstrip("/") for k, r in roots.items() if is_remote(r)})
        self.follow = follow_symlinks

    @staticmethod
    def _root_of(path: str, roots: Mapping[str, str]) -> str | None:
        return next(
            (
                label
                for label, r in sorted(roots.items())
                if path == r or path.startswith(r.rstrip("/") + "/")
            ),
            None,
        )

    def inside(self, real: str) -> bool:
        """Whether a resolved path lies in one of the roots."""
        return self._root_of(real, self.roots) is not None

    def label_of(self, path: str) -> str | None:
        """The root an absolute, unresolved path is named under, if any."""
        return self._root_of(path, self.given)

    def why_not(self, path: str | os.PathLike) -> BiocodeError | None:
        """None if ``path`` may be read, else the error to record."""
        try:
            real = os.path.realpath(path, strict=True)
        except OSError as exc:
            return path_error(path, exc, stage="scan")
        if self.follow or self.inside(real):
            return None
        return OutsideRootsError(
            path,
            f"resolves to {display_path(real)}, outside the configured roots "
            "(set follow_symlinks: true to read it)",
            stage="scan",
        )


def _row(
    label: str,
    rel: str,
    full: Path | str,
    is_store: bool,
    shards: int,
    why: Exception | None,
    limits: Limits | None = None,
    members: str | None = None,
    plain: bool = False,
) -> ManifestRow:
    """One manifest row. ``plain``: the path's own size and mtime, without
    looking for the fileset it may belong to (the scan groups filesets
    afterwards, see :func:`group_filesets`, so a file is opened once)."""
    iid = image_id(label, rel)
    size = mtime = 0
    if why is None:
        try:
            where = Location.plain(full, limits) if plain else locate(full, limits)
            size, mtime = where.state()
            if size == 0 and not is_store and os.path.isfile(full):
                # refused here, as a bad symlink is: nothing to open
                why = EmptyImageError(full, "file is empty (0 bytes)", stage="scan")
        except BiocodeError as exc:
            why = exc
        except OSError as exc:
            why = BiocodeError(full, f"cannot stat: {exc.strerror}", stage="scan")
    return ManifestRow(
        iid,
        label,
        display_path(rel),
        str(full),
        size,
        mtime,
        is_store,
        shard_of(iid, shards),
        error=None if why is None else str(why),
        error_type=None if why is None else why.kind,
        members=members,
    )


def group_filesets(
    rows: list[ManifestRow],
    policy: Confinement,
    shards: int,
    plain: Container[tuple[str, int, int]] = (),
) -> list[ManifestRow]:
    """One row per fileset instead of one per member file (see
    :mod:`biocodes.sources.fileset`): the row of its entry, with its members
    listed. A member outside the roots, or a missing member or entry, makes
    the set an error row that names it; files of no set are kept as they are.

    ``plain``: (abspath, size, mtime_ns) of files an earlier scan found to be
    images on their own (:func:`plain_files`). Whether a file starts a
    fileset is in its own bytes, so such a file with the same size and mtime
    is not opened again (the same trust the shard jobs give size and mtime)."""
    import json

    from biocodes.sources.fileset import member_state, resolve

    sets: dict[tuple[str, str], object] = {}
    out = []
    for r in rows:
        fileset = None
        refused = r.error_type in ("outside_roots", "bad_symlink")
        known = r.error is None and (r.abspath, r.size, r.mtime_ns) in plain
        if not refused and not r.is_store and not known:
            try:
                fileset = resolve(r.abspath)
            except BiocodeError as exc:
                fileset = None  # the read reports the bad metadata
                if r.error is None:  # as locating it would have (see _row)
                    r = replace(
                        r, size=0, mtime_ns=0, error=str(exc), error_type=exc.kind
                    )
        if fileset is None:
            out.append(r)
        else:
            sets.setdefault((r.root, fileset.entry), fileset)
    # an entry that could not be opened as one (a FIFO) is the set's row only
    entries = {(label, entry) for label, entry in sets}
    out = [r for r in out if (r.root, os.path.abspath(r.abspath)) not in entries]
    for (label, entry), fileset in sets.items():
        given = policy.given.get(label, "")
        rel = Path(os.path.relpath(entry, given)).as_posix()
        why: BiocodeError | None = None
        members = None
        for m in fileset.members:
            mrel = Path(os.path.relpath(m, given)).as_posix()
            if mrel.startswith("../") or (
                os.path.lexists(m)
                and not policy.follow
                and not policy.inside(os.path.realpath(m))
            ):
                why = OutsideRootsError(
                    entry,
                    f"fileset member {display_path(mrel)} lies outside the "
                    "configured roots",
                    stage="scan",
                )
                break
        if why is None:
            try:
                fileset.check_complete()
                members = json.dumps(
                    [
                        [Path(os.path.relpath(m, given)).as_posix(), size, mtime]
                        for m, size, mtime in member_state(fileset)
                    ]
                )
            except BiocodeError as exc:
                why = exc
        out.append(_row(label, rel, entry, False, shards, why, None, members))
    out.sort(key=lambda r: (r.root, r.path))
    return out


def scan_root(
    label: str,
    root: str | os.PathLike,
    shards: int,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    confinement: Confinement | None = None,
    skipped: Counter | None = None,
    plain: Container[tuple[str, int, int]] = (),
) -> Iterator[ManifestRow]:
    """Yield the images under one root (directories first, then their files;
    the files of a fileset as one image, see :func:`group_filesets`, which
    ``plain`` is passed to).

    Symlinked files are checked against ``confinement`` (default: this root
    only, no following); symlinked directories are descended only with
    ``follow_symlinks``, each real directory once, so a loop ends. Files left
    out by ``include``/``exclude`` are counted by suffix in ``skipped``.
    """
    base = Path(root)
    policy = confinement or Confinement({label: str(root)})
    seen = {os.path.realpath(base)}
    found: list[ManifestRow] = []  # grouped into filesets at the end
    for dirpath, dirs, files in os.walk(base, followlinks=policy.follow):
        here = Path(dirpath)
        dirs.sort()
        stores, links = [], []
        for d in list(dirs):
            full = here / d
            if is_zarr_store(full):
                stores.append(d)
                dirs.remove(d)  # a store is one image: do not descend
            elif full.is_symlink():
                real = os.path.realpath(full)
                if not policy.follow or real in seen:
                    dirs.remove(d)
                if not policy.follow and not policy.inside(real):
                    links.append(d)  # reported, so nothing is skipped unseen
                seen.add(real)
            else:
                seen.add(os.path.realpath(full))
        for name in sorted(stores + links + files):
            full = here / name
            rel = full.relative_to(base).as_posix()
            is_store = name in stores
            wanted = is_store or name in links or _matches(rel, include)
            if _matches(rel, exclude) or not wanted:
                if skipped is not None:
                    skipped[_suffix(name)] += 1
                continue
            why = policy.why_not(full) if full.is_symlink() else None
            found.append(_row(label, rel, full, is_store, shards, why, plain=True))
    yield from group_filesets(found, policy, shards, plain)


def _suffix(name: str) -> str:
    """A file's suffix for the skipped-files count: ``.ome.tif`` counts as
    ``.tif``; no suffix as ``(none)``."""
    return os.path.splitext(name)[1].lower() or "(none)"


def describe_skipped(skipped: Mapping[str, int]) -> str:
    """One log line: how many files the scan passed over, by suffix."""
    if not skipped:
        return "skipped: no files (every file matched include and no exclude)"
    by = sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{suffix} {n}" for suffix, n in by[:20])
    more = f", ... {len(by) - 20} more suffixes" if len(by) > 20 else ""
    total = sum(skipped.values())
    return (
        f"skipped: {total} file{'' if total == 1 else 's'} not in include or "
        f"excluded (by suffix: {shown}{more})"
    )


def scan_remote_root(
    label: str,
    url: str,
    shards: int,
    exclude: Sequence[str] = (),
    limits: Limits | None = None,
) -> Iterator[ManifestRow]:
    """Yield the OME-Zarr stores under a remote root (or the root itself, if
    it is one), found top-down: a store's own keys are never listed here.
    Other files are not read remotely, so they are not listed either."""
    remote = RemoteStore(url, limits)

    def walk(prefix: str) -> Iterator[str]:
        dirs, files = remote.list_dir(prefix)
        if ZARR_META.intersection(files):
            yield prefix
            return
        for d in dirs:
            yield from walk(f"{prefix}{d}/")

    try:
        stores = list(walk(""))
        if not stores and remote.list_dir("") == ([], []):
            raise UnreadableError(
                url,
                "the root lists nothing (no such prefix, or a server without "
                "directory listings: name its stores in a manifest instead)",
                stage="scan",
            )
    except BiocodeError as exc:  # the root cannot be listed
        yield _row(label, url_name(url), url, True, shards, exc)
        return
    for prefix in stores:
        rel = prefix.rstrip("/") or url_name(url)
        if not _matches(rel, exclude):
            full = f"{remote.url}/{prefix.rstrip('/')}".rstrip("/")
            yield _row(label, rel, full, True, shards, None, limits)


def scan(
    roots: Mapping[str, str],
    shards: int,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
    limits: Limits | None = None,
    skipped: Counter | None = None,
    plain: Container[tuple[str, int, int]] = (),
) -> list[dict]:
    """All images of all roots, as dict rows, sorted by root and path
    (``plain``: see :func:`group_filesets`)."""
    policy = Confinement(roots, follow_symlinks)
    rows = []
    for label in sorted(roots):
        if is_remote(roots[label]):
            found = scan_remote_root(label, roots[label], shards, exclude, limits)
        else:
            found = scan_root(
                label, roots[label], shards, include, exclude, policy, skipped, plain
            )
        rows += [dict(vars(r)) for r in found]
    rows.sort(key=lambda r: (r["root"], r["path"]))
    return rows


def from_file(
    path: str | os.PathLike,
    shards: int,
    roots: Mapping[str, str],
    follow_symlinks: bool = False,
    limits: Limits | None = None,
) -> list[dict]:
    """Rows for a user's list of paths (CSV, TSV or Parquet with a ``path`` column).

    Relative paths are relative to the list's own directory; URLs name remote
    stores. Each path must lie inside a configured root, and is labelled with
    that root, so its image id is the one a scan would give; any other path
    becomes an error row.
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
    policy = Confinement(roots, follow_symlinks)
    rows: list[ManifestRow] = []
    for given in sorted(set(table.column("path").to_pylist())):
        if is_remote(given):
            full: Path | str = given.rstrip("/")
        else:
            full = Path(os.path.abspath(path.parent / given))  # no symlinks resolved
        label = policy.label_of(str(full))
        if label is None:
            why = OutsideRootsError(
                given,
                "listed in the manifest but outside the configured roots",
                stage="scan",
            )
            rows.append(_row("manifest", given, full, False, shards, why))
            continue
        if isinstance(full, str):  # remote: a store, nothing to resolve
            rel = full[len(policy.given[label]) :].strip("/") or url_name(full)
            rows.append(_row(label, rel, full, True, shards, None, limits))
            continue
        rel = full.relative_to(policy.given[label]).as_posix()
        why = policy.why_not(full)
        is_store = why is None and full.is_dir()
        rows.append(_row(label, rel, full, is_store, shards, why))
    return [dict(vars(r)) for r in group_filesets(rows, policy, shards)]


MANIFEST_SCHEMA_FIELDS = (
    ("image_id", "string"),
    ("root", "string"),
    ("path", "string"),
    ("abspath", "binary"),  # the OS's bytes: a name need not be UTF-8
    ("size", "int64"),
    ("mtime_ns", "int64"),
    ("is_store", "bool_"),
    ("shard", "int32"),
    ("error", "string"),
    ("error_type", "string"),
    ("members", "string"),
    ("in_progress", "bool_"),
)

#: ``incremental.settle_seconds`` when the config leaves it out: an hour, so
#: a file a microscope (or a copy) wrote to in the last hour, or a store
#: still gaining chunks, is left for a later night (as OMERO's DropBox waits
#: for a quiet file). BIOCODES_SETTLE_SECONDS overrides this default (the
#: tests, a demo on files just written); a value in the config wins over both.
SETTLE_SECONDS = 3600


def settle_seconds(incremental: Mapping[str, Any] | None) -> int:
    """The settle time a run uses: the config's, else the environment's,
    else :data:`SETTLE_SECONDS`."""
    given = (incremental or {}).get("settle_seconds")
    if given is None:
        given = os.environ.get("BIOCODES_SETTLE_SECONDS", SETTLE_SECONDS)
    return max(0, int(given))


def build_manifest(
    out: str | os.PathLike,
    roots: Mapping[str, str],
    shards: int | Callable[[int], int],
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    manifest_file: str | None = None,
    follow_symlinks: bool = False,
    limits: Limits | None = None,
    settle: int = 0,
    settle_exempt: Sequence[str] = (),
    plain: Container[tuple[str, int, int]] = (),
) -> int:
    """Scan (or read the user's list) and write the manifest Parquet
    atomically, stamped with the run and the skipped files by suffix.

    An image whose newest mtime (a store's newest file, a fileset's newest
    member) is less than ``settle`` seconds old is marked ``in_progress``:
    it may still be being written, so this run keeps its previous rows (or
    leaves a new one out) and a later run reads it once it has settled.
    Roots in ``settle_exempt`` (the example, generated just before) are
    read at once. ``shards``: the count, or a function deciding it from the
    number of images found (see :func:`biocodes.repository.layout.decide_shards`);
    the count is stamped on the manifest (:func:`manifest_shards`).
    ``plain``: files known to be images on their own (see
    :func:`group_filesets`; a user's list is always looked at whole)."""
    import json
    import time

    import pyarrow as pa

    from biocodes.repository.tables import write_atomic

    skipped: Counter = Counter()
    count = shards if isinstance(shards, int) else 1
    rows = (
        from_file(manifest_file, count, roots, follow_symlinks, limits)
        if manifest_file
        else scan(
            roots, count, include, exclude, follow_symlinks, limits, skipped, plain
        )
    )
    if not isinstance(shards, int):  # decided from this scan
        count = shards(len(rows))
        for r in rows:
            r["shard"] = shard_of(r["image_id"], count)
    recent = time.time_ns() - settle * 10**9
    for r in rows:
        r["abspath"] = os.fsencode(r["abspath"])
        r["in_progress"] = (
            bool(settle)
            and r["error"] is None
            and r["root"] not in settle_exempt
            and r["mtime_ns"] > recent
        )
    schema = pa.schema([(n, getattr(pa, t)()) for n, t in MANIFEST_SCHEMA_FIELDS])
    table = pa.Table.from_pylist(rows, schema=schema)
    meta = {**new_run(), "skipped": json.dumps(dict(sorted(skipped.items())))}
    meta["shards"] = str(count)
    write_atomic(table.replace_schema_metadata(meta), out)
    return len(rows)


def plain_files(parts_dir: str | os.PathLike) -> frozenset[tuple[str, int, int]]:
    """(abspath, size, mtime_ns) of the files the last scan listed as images
    on their own (not a store, not a fileset, no error), from the shards'
    parts of its manifest (see :func:`biocodes.repository.shard.write_shard_manifests`):
    what :func:`group_filesets` need not open again."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found: set[tuple[str, int, int]] = set()
    columns = ["abspath", "size", "mtime_ns", "is_store", "members", "error"]
    for part in sorted(Path(parts_dir).glob("*.parquet")):
        try:
            table = pq.read_table(part, columns=columns)
        except (OSError, ValueError, KeyError):  # unreadable or another schema
            continue
        alone = pc.and_(
            pc.and_(pc.invert(table["is_store"]), pc.is_null(table["members"])),
            pc.is_null(table["error"]),
        )
        table = table.filter(pc.fill_null(alone, False))
        found.update(
            zip(
                map(os.fsdecode, table["abspath"].to_pylist()),
                table["size"].to_pylist(),
                table["mtime_ns"].to_pylist(),
                strict=True,
            )
        )
    return frozenset(found)


def manifest_shards(path: str | os.PathLike) -> int:
    """The shard count the scan stamped on its manifest."""
    import pyarrow.parquet as pq

    return int((pq.read_schema(path).metadata or {})[b"shards"])


def read_manifest(path: str | os.PathLike, shard: int | None = None) -> list[dict]:
    """The manifest's rows (of one shard), with ``abspath`` as a str path."""
    import pyarrow.parquet as pq

    filters = None if shard is None else [("shard", "=", shard)]
    rows = pq.read_table(path, filters=filters).to_pylist()
    for r in rows:
        r["abspath"] = os.fsdecode(r["abspath"])
    return rows


def new_run() -> dict[str, str]:
    """A run's id and start time. The scan starts every run, so it stamps both
    on the manifest and every later step reads them from there. With
    ``SOURCE_DATE_EPOCH`` set (the reproducible-builds convention) both come
    from it, so two runs over the same files write byte-identical catalogues.
    Run ids sort in the order the runs started."""
    from datetime import UTC, datetime

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        now = datetime.fromtimestamp(int(epoch), UTC)
        run_id = f"{now:%Y%m%dT%H%M%SZ}"
    else:
        now = datetime.now(UTC)
        # sorts as the runs started, two in one second too (the catalogue
        # takes the last run by its id); the random part keeps ids unique
        run_id = f"{now:%Y%m%dT%H%M%SZ}-{now:%f}-{os.urandom(2).hex()}"
    return {"run_id": run_id, "started": now.isoformat(timespec="seconds")}
