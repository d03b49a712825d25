"""The shard merge: one run's shard tables into the catalogue, with the
run's row, its changes and duplicates.

The catalogue holds one partition per shard of each shard table, so the
merge is a short sequence of steps (:func:`merge_run`): plan (which
partitions' inputs changed), link or merge each partition, index the
duplicates, record the run. Partitions are written sorted and with fixed
schemas, so two runs over the same pixels produce byte-identical files apart
from run metadata. The new catalogue is built beside the old one and swapped
in at once: a reader never sees half of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from biocodes.repository.history import carry
from biocodes.repository.tables import (
    SCHEMAS,
    SHARD_TABLES,
    TABLES,
    file_identity,
    is_partition,
    part_file,
    read_catalogue,
    read_catalogue_table,
    read_table,
    run_file,
    sorted_batches,
    table_files,
    write_atomic,
)

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
    from biocodes.sources.bioformats import BIOFORMATS_VERSION

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
        from biocodes.infra.errors import redact_text

        return redact_text(config)
    return config


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


def _walk_rules_changed(previous_runs: list[dict], rules: str) -> str:
    """``walk rules 1 -> 2`` when the last run read with other walk rules
    (a run from before ``runs.walk_rules`` had rules 1), else ""."""
    if not previous_runs:
        return ""
    before = previous_runs[-1].get("walk_rules") or "1"
    return f"walk rules {before} -> {rules}" if before != rules else ""


def _previous_runs(path: Path) -> pa.Table:
    """The ``runs`` table so far, in the current schema: a catalogue from
    before 2026-11-30 stored ``started``/``finished`` as ISO strings, and
    older ones lack columns added since (null). One row per run: small."""
    if not path.exists():
        return SCHEMAS["runs"].empty_table()
    rows = [_timestamps(r) for r in pq.read_table(path).to_pylist()]
    return pa.Table.from_pylist(rows, schema=SCHEMAS["runs"])


def _timestamps(run: dict) -> dict:
    """A ``runs`` row with ``started``/``finished`` as datetimes (catalogues
    before 2026-11-30 stored ISO strings)."""
    from datetime import datetime

    return {
        **run,
        **{
            k: datetime.fromisoformat(run[k])
            for k in ("started", "finished")
            if isinstance(run.get(k), str)
        },
    }


def skipped_files(manifest: str | os.PathLike) -> dict[str, int]:
    """Files the scan passed over (not in ``include``, or ``exclude``d), by
    suffix, as the scan stamped them on the manifest."""
    import json

    meta = pq.read_schema(manifest).metadata or {}
    return json.loads(meta.get(b"skipped", b"{}"))


def run_figures(
    images: pa.Table,
    scenes: pa.Table,
    change_rows: pa.Table,
    counts: Sequence[dict[str, int]],
    run_id: str,
    removed: int = 0,
) -> dict[str, int]:
    """The ``runs`` counts, from Arrow columns. Per-run figures count this
    run only: images read, re-hashed and reused (from the shards' counts),
    the changes (added, changed, touched, recovered, removed, failed: new
    failures, still_failing: known ones), and the scenes
    and pixel bytes read (images whose rows this run wrote). Catalogue totals
    after the run are ``images``, ``images_ok``, ``images_error``,
    ``images_removed_total``, ``scenes`` and ``bytes_total``.

    ``images``/``scenes``: the shards' rows (``image_id``, ``status``,
    ``run_id``; ``image_id``, ``status``, ``nbytes``); ``removed``: the images
    carried on as removed."""
    import pyarrow.compute as pc

    def count(column: pa.ChunkedArray, value: str) -> int:
        return int(pc.sum(pc.equal(column, value)).as_py() or 0)

    def total_bytes(mask: pa.ChunkedArray) -> int:
        return int(pc.sum(pc.filter(scenes["nbytes"], mask)).as_py() or 0)

    status, kinds = images["status"], change_rows["change"]
    total = {
        k: sum(c.get(k, 0) for c in counts)
        for k in ("read", "rehashed", "reused", "in_progress", "refused")
    }
    live = pc.fill_null(pc.equal(scenes["status"], "ok"), False)
    read_now = pc.filter(images["image_id"], pc.equal(images["run_id"], run_id))
    read = pc.and_(live, pc.is_in(scenes["image_id"], value_set=read_now))
    return {
        "images": images.num_rows - count(status, "removed"),
        "images_ok": count(status, "ok"),
        "images_error": count(status, "error"),
        "images_removed_total": count(status, "removed") + removed,
        "images_read": total["read"],
        "images_rehashed": total["rehashed"],
        "images_reused": total["reused"],
        "images_in_progress": total["in_progress"],
        "images_refused": total["refused"],
        "images_added": count(kinds, "added"),
        "images_changed": count(kinds, "changed"),
        "images_touched": count(kinds, "touched"),
        "images_removed": count(kinds, "removed"),
        "images_failed": count(kinds, "failed"),
        "images_recovered": count(kinds, "recovered"),
        "images_still_failing": count(kinds, "still_failing"),
        "scenes": int(pc.sum(live).as_py() or 0),
        "scenes_read": int(pc.sum(read).as_py() or 0),
        "bytes_hashed": total_bytes(read),
        "bytes_total": total_bytes(live),
    }


def merge_run(
    state_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: dict,
    manifest: str | os.PathLike,
    counts: Sequence[dict[str, int]] = (),
    threads: int = 1,
) -> dict:
    """Merge the shards' tables with the previous catalogue into a new one.

    Each shard table is a directory of partitions, one per shard
    (``<table>/part-NNNN.parquet``, see :mod:`biocodes.repository.tables`).
    A partition whose shard files are those the previous merge read is the
    previous file, linked: nothing is read. The others are rewritten from
    their shard's files and the rows of that shard's removed images
    (``status=removed``), and only they are compared with the previous
    catalogue for the run's ``changes``. ``changes`` and ``runs`` grow by
    one file for this run; ``duplicates`` is recomputed when any partition
    changed. The whole catalogue is swapped in at once
    (:func:`biocodes.infra.atomic.atomic_dir`), so a reader or a crash never
    sees half of it. A catalogue of single-file tables (before partitions),
    or of another shard count, is read whole once and rewritten in
    partitions. ``threads``: of the near-duplicate search. Returns the new
    ``runs`` row.
    """
    from biocodes.infra.atomic import atomic_dir

    run_id, started = run_info(manifest)
    out = Path(out_dir)
    done = merged_already(out, run_id)
    if done is not None:
        # this run is merged already (its job failed after the catalogue was
        # swapped in, e.g. writing the report): merging it again would
        # record it twice, the second time as a night without changes
        return done
    plan = plan_merge(out, state_dirs, config)
    with atomic_dir(out_dir, keep=3) as new:
        (new / "_merge").mkdir()
        merged = merge_partitions(plan, out, new, state_dirs, run_id)
        index_codes(plan, out, new, state_dirs)
        index_duplicates(plan, out, new, config, threads)
        run = record_run(out, new, run_id, started, config, manifest, merged, counts)
        plan.save(new, merged.figures)
        link_old_names(new)
    return run


def link_old_names(new: Path) -> None:
    """``<table>.parquet``, a symlink to the table's directory: what a reader
    of a catalogue from before partitions opens (pyarrow and DuckDB read a
    directory of Parquet files as one table) keeps working."""
    for name in TABLES:
        (new / f"{name}.parquet").symlink_to(name, target_is_directory=True)


#: the near pairs a merge found, for the next merge (not a catalogue table)
PAIRS_FILE = "_merge/near_pairs.parquet"
#: what each partition of a catalogue was made of (see :func:`plan_merge`)
INPUTS_FILE = "_merge/inputs.json"
#: bumped whenever the merge would write a partition from the same inputs
#: differently: a file from before is then never taken for this merge's
MERGE_FORMAT = 3
#: the ``runs`` figures that are sums over the partitions (the rest come
#: from the run's changes and the shard jobs' counts)
PARTITION_FIGURES = (
    "images",
    "images_ok",
    "images_error",
    "images_removed_total",
    "scenes",
    "scenes_read",
    "bytes_hashed",
    "bytes_total",
)
#: of those, the figures of this run's reads: none in a linked partition
READ_FIGURES = ("scenes_read", "bytes_hashed")


@dataclass
class MergePlan:
    """What a merge does: per partition of each table, a digest of its
    inputs and whether the previous catalogue's was made of exactly those."""

    shards: int
    #: per partition, per table
    digests: list[dict[str, str]]
    #: (table, partition) the previous merge made of the same inputs: linked
    same: set[tuple[str, int]]
    #: the previous catalogue's partitions are this layout's (same count)
    partitioned: bool
    duplicates: str
    duplicates_same: bool
    #: the previous merge's figures per partition (see :data:`PARTITION_FIGURES`)
    figures: list[dict]

    def save(self, new: Path, figures: list[dict]) -> None:
        """Record this merge's inputs and figures for the next merge."""
        import json

        record = {
            "format": MERGE_FORMAT,
            "shards": self.shards,
            "partitions": [
                {"digest": d, "figures": f}
                for d, f in zip(self.digests, figures, strict=True)
            ],
            "duplicates": self.duplicates,
        }
        (new / INPUTS_FILE).write_text(json.dumps(record, indent=1, sort_keys=True))


def plan_merge(
    out: Path, state_dirs: Sequence[str | os.PathLike], config: dict
) -> MergePlan:
    """Decide what to read: per partition of each table, a digest of its
    shard's files (each file's real path, size, mtime and inode: a shard
    that changes writes its files anew, one that does not keeps them; every
    table but ``errors`` carries removed images, so depends on ``images``
    too), the schema, the shard count, :data:`MERGE_FORMAT` and pyarrow's
    version. Equal digests mean equal partitions, so a quiet shard's rows
    are never read again."""
    import hashlib
    import json

    from biocodes.repository.duplicates import near_distances

    def stat(path: Path) -> list | None:
        try:
            st = os.stat(path)  # through the state's symlink
        except FileNotFoundError:
            return None
        return [os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino]

    shards = len(state_dirs)
    base = [MERGE_FORMAT, pa.__version__, shards]

    def digest(*parts: object) -> str:
        text = json.dumps([base, *parts], default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    digests = []
    for d in state_dirs:
        files = {n: stat(Path(d) / f"{n}.parquet") for n in SHARD_TABLES}
        digests.append(
            {
                n: digest(
                    n, str(SCHEMAS[n]), files[n], n != "errors" and files["images"]
                )
                for n in SHARD_TABLES
            }
        )
    distances = list(near_distances(config.get("duplicates", {})).values())
    inputs = [[d["images"], d["scenes"]] for d in digests]
    text = json.dumps([base, str(SCHEMAS["duplicates"]), inputs, distances])
    duplicates = hashlib.sha256(text.encode()).hexdigest()
    try:
        previous = json.loads((out / INPUTS_FILE).read_text())
    except (OSError, ValueError):
        previous = {}
    parts = previous.get("partitions") or []
    partitioned = (
        previous.get("format") == MERGE_FORMAT
        and previous.get("shards") == shards
        and len(parts) == shards
    )
    same = set()
    if partitioned:
        same = {
            (n, k)
            for k in range(shards)
            for n in SHARD_TABLES
            if (parts[k].get("digest") or {}).get(n) == digests[k][n]
            and (out / n / part_file(k)).is_file()
        }
    duplicates_same = (
        partitioned
        and previous.get("duplicates") == duplicates
        and bool(table_files(out, "duplicates"))
        and (out / "duplicates").is_dir()
        and (out / PAIRS_FILE).is_file()
    )
    figures = [p.get("figures", {}) for p in parts] if partitioned else []
    return MergePlan(
        shards, digests, same, partitioned, duplicates, duplicates_same, figures
    )


class Previous:
    """The previous catalogue's rows of one partition: its file, or, for a
    catalogue of single-file tables or of another shard count, the rows of
    the whole table whose images fall in that shard (each table read once
    and kept while it is asked for)."""

    def __init__(self, out: Path, shards: int, partitioned: bool) -> None:
        self.out, self.shards, self.partitioned = out, shards, partitioned
        self._whole: dict[str, tuple[pa.Table, Any]] = {}

    def rows(
        self,
        name: str,
        k: int,
        columns: Sequence[str] | None = None,
        filter: Any = None,
    ) -> pa.Table:
        if self.partitioned:
            return read_table(self.out / name / part_file(k), name, columns, filter)
        if name not in self._whole:
            self._whole[name] = self._split(name)
        table, shard = self._whole[name]
        table = table.filter(pc.equal(shard, k))
        if filter is not None:
            table = table.filter(filter)
        return table if columns is None else table.select(list(columns))

    def _split(self, name: str) -> tuple[pa.Table, Any]:
        """The whole table, and each row's shard in this run's layout."""
        from biocodes.repository.manifest import shard_of

        table = read_catalogue_table(self.out, name)
        ids = pc.unique(table["image_id"])
        shard = pa.array([shard_of(i, self.shards) for i in ids.to_pylist()])
        return table, shard.take(pc.index_in(table["image_id"], value_set=ids))

    def forget(self, keep: Sequence[str] = ()) -> None:
        """Drop the whole tables read, but those in ``keep``."""
        for name in [n for n in self._whole if n not in keep]:
            del self._whole[name]


@dataclass
class Merged:
    """What the partitions' merge found: the run's changes (all partitions)
    and per partition its figures."""

    changes: pa.Table
    figures: list[dict]


def merge_partitions(
    plan: MergePlan,
    out: Path,
    new: Path,
    state_dirs: Sequence[str | os.PathLike],
    run_id: str,
) -> Merged:
    """Link the partitions whose inputs did not change; compare the others'
    shard files with the previous catalogue (the run's ``changes``) and
    write them, one partition of one table in memory at a time."""
    from biocodes.repository.history import changes_table, dated, failing_since

    previous = Previous(out, plan.shards, plan.partitioned)
    for name in SHARD_TABLES:
        (new / name).mkdir()
    redo = [
        k
        for k in range(plan.shards)
        if any((n, k) not in plan.same for n in SHARD_TABLES)
    ]
    # a failed image is still failing: its partition's changes say so, even
    # where its files are linked (the workflow reads it again every night)
    failing = [
        k for k in range(len(plan.figures)) if plan.figures[k].get("images_error")
    ]
    compare = sorted({*redo, *(k for k in failing if k < plan.shards)})
    found, gone, shares = [], {}, {}
    # the history is read only on a night with work
    failures = failing_since(
        _last_failures(out) if compare else SCHEMAS["changes"].empty_table()
    )
    # each partition looks its failures up among its own (not all of them)
    failing_shard = _shards_of(failures["image_id"], plan.shards)
    (new / FAILING_DIR).mkdir(parents=True)
    # linked partitions: their failed images are still failing and nothing
    # else changed, so their kept rows alone say so (not the partitions),
    # all in one comparison
    kept = {
        k: out / FAILING_DIR / part_file(k)
        for k in compare
        if k not in redo and (out / FAILING_DIR / part_file(k)).is_file()
    }
    if kept:
        failing_rows = _failing_only(list(kept.values()))
        rows, _gone = changes_table(failing_rows, failing_rows, run_id, failures)
        found.append(rows)
    for k, path in kept.items():
        gone[k] = pa.array([], pa.string())
        _link(path, new / FAILING_DIR / part_file(k))
    undated = []  # the shard jobs' changes, dated all at once
    for k in compare:  # the changes, from the columns they need
        if k in kept:
            continue
        state = Path(state_dirs[k])
        shard = shard_changes(state, out, k, run_id) if plan.partitioned else None
        if shard is not None:  # the shard's job compared it with these files
            folder = state / CHANGES_DIR
            undated.append(read_table(folder / "changes.parquet", "changes"))
            gone[k] = pa.array(shard["gone"], pa.string())
            shares[k] = shard["figures"]
            if (folder / "failing.parquet").is_file():
                _link(folder / "failing.parquet", new / FAILING_DIR / part_file(k))
            continue
        before, now = _compared(previous, state, k)
        mine = failures.filter(pc.equal(failing_shard, k))

        planes = _stored_planes(previous, state, k)
        rows, gone[k], shares[k] = partition_changes(before, now, run_id, mine, planes)
        found.append(rows)
        _keep_failing(now["images"], new / FAILING_DIR / part_file(k))
    if undated:
        found.append(dated(pa.concat_tables(undated), run_id, failures))
    previous.forget()
    for name in SHARD_TABLES:  # one table of one partition in memory at a time
        for k in range(plan.shards):
            if (name, k) in plan.same:
                _link(out / name / part_file(k), new / name / part_file(k))
                continue
            state = Path(state_dirs[k]) / f"{name}.parquet"
            carries = name != "errors" and len(gone[k])
            if not carries and is_partition(state, name):
                _link(state, new / name / part_file(k))  # the shard wrote it so
                continue
            table = read_table(state, name)
            if carries:  # a gone file's errors are moot
                carried = previous.rows(
                    name, k, filter=pc.field("image_id").isin(gone[k])
                )
                table = pa.concat_tables([table, carry(name, carried, gone[k])])
            write_atomic(sorted_batches(name, table), new / name / part_file(k))
            del table
            pa.default_memory_pool().release_unused()
        previous.forget()
    figures = [
        {k: 0 if k in READ_FIGURES else v for k, v in plan.figures[k].items()}
        if k not in redo
        else shares[k]
        for k in range(plan.shards)
    ]
    changes = pa.concat_tables(found) if found else SCHEMAS["changes"].empty_table()
    return Merged(changes, figures)


#: in a shard's state: its partition's changes, found by its job (see
#: :func:`write_partition_changes`)
CHANGES_DIR = "partition_changes"


def partition_changes(
    before: dict[str, pa.Table],
    now: dict[str, pa.Table],
    run_id: str,
    failures: pa.Table | None,
    planes: Callable[[pa.Array], tuple[pa.Table, pa.Table]],
) -> tuple[pa.Table, pa.Array, dict[str, int]]:
    """One partition's ``changes`` rows, its gone images and its figures,
    from the compared columns of its two versions (``now`` with the shard's
    ``run_id``, ``status`` and ``nbytes`` for the figures); ``planes`` gives
    the plane digests, before and now, of the images whose codes changed
    (only theirs are read)."""
    from biocodes.repository.history import (
        changed_ids,
        changes_table,
        with_planes_changed,
    )

    rows, gone = changes_table(before, now, run_id, failures)
    changed = changed_ids(rows)
    if len(changed):
        rows = with_planes_changed(rows, *planes(changed))
    return rows, gone, _partition_figures(now, run_id, len(gone))


def write_partition_changes(
    new_state: Path,
    source: dict[str, list[int] | None],
    before: dict[str, pa.Table],
    now: dict[str, pa.Table],
    run_id: str,
) -> None:
    """In a shard job, beside its new tables (``now``): its partition's
    changes against its last tables (``before``), as the merge would find
    them (:func:`partition_changes`), so the merge need not read both
    versions of every changed partition (at ten million images a 1% night
    changes every partition): the ``changes`` rows (their
    ``failing_since`` is dated by the merge, which has the history), the
    gone images, the partition's figures and its failed images' rows.
    ``source``: the :func:`file_identity` of the ``images`` and ``scenes``
    files ``before`` came from; the merge uses these changes only where the
    previous catalogue's partition is those very files (linked), see
    :func:`shard_changes`."""
    import json

    from biocodes.repository.history import PLANE_COLUMNS

    was, will = _compared_columns()
    old = {n: before[n].select(c) for n, c in was.items()}
    new = {n: now[n].select(c) for n, c in will.items()}

    def planes(changed: pa.Array) -> tuple[pa.Table, pa.Table]:
        theirs = [
            t.filter(pc.is_in(t["image_id"], changed)).select(PLANE_COLUMNS)
            for t in (before["scenes"], now["scenes"])
        ]
        return theirs[0], theirs[1]

    rows, gone, figures = partition_changes(old, new, run_id, None, planes)
    folder = new_state / CHANGES_DIR
    folder.mkdir()
    write_atomic(rows, folder / "changes.parquet")
    _keep_failing(new["images"], folder / "failing.parquet")
    meta = {
        "run_id": run_id,
        "source": source,
        "figures": figures,
        "gone": gone.to_pylist(),
    }
    (folder / "partition.json").write_text(json.dumps(meta, sort_keys=True))


def shard_changes(state: Path, out: Path, k: int, run_id: str) -> dict | None:
    """The changes a shard's job found for partition ``k`` (see
    :func:`write_partition_changes`), if they are this run's and were found
    against the previous catalogue's partition itself; else None (the merge
    compares)."""
    import json

    try:
        meta = json.loads((state / CHANGES_DIR / "partition.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("run_id") != run_id:
        return None
    source = meta.get("source", {})
    for name in ("images", "scenes"):
        was = source.get(name)
        if was is None or file_identity(out / name / part_file(k)) != was:
            return None
    return meta


#: per partition, the compared columns of its failed images (see
#: :func:`merge_partitions`): a linked partition's still failing images are
#: found there, not by reading the partition
FAILING_DIR = "_merge/failing"


def _shards_of(ids: pa.ChunkedArray | pa.Array, shards: int) -> pa.Array:
    """Each image id's shard in a layout of ``shards``."""
    from biocodes.repository.manifest import shard_of

    return pa.array([shard_of(i, shards) for i in ids.to_pylist()], pa.int64())


def _keep_failing(images: pa.Table, path: Path) -> None:
    """The failed images' rows of a partition's ``images`` (compared
    columns), if it has any."""
    failed = images.filter(pc.fill_null(pc.equal(images["status"], "error"), False))
    if failed.num_rows:
        write_atomic(failed, path)


def _failing_only(paths: list[Path]) -> dict[str, pa.Table]:
    """Linked partitions' failed images, as :func:`changes_table` reads a
    partition (their scenes, if any, are unchanged: none are needed)."""
    from biocodes.repository.history import SCENE_COLUMNS

    scenes = SCHEMAS["scenes"].empty_table().select(SCENE_COLUMNS)
    images = pa.concat_tables(pq.read_table(p) for p in paths)
    return {"images": images, "scenes": scenes}


def _last_failures(out: Path) -> pa.Table:
    """The failed and still failing images of the last run: every night
    records each failing image again (its partition is compared), with the
    run it has failed since, so the last run's file is enough; a catalogue
    of single-file tables is read whole."""
    columns = ["run_id", "image_id", "change", "failing_since"]
    wanted = pc.field("change").isin(["failed", "still_failing"])
    wanted &= pc.field("image_id").is_valid()
    runs = sorted((out / "changes").glob("run-*.parquet"))
    if runs:
        return read_table(runs[-1], "changes", columns, wanted)
    return read_catalogue_table(out, "changes", columns, wanted)


def _compared(
    previous: Previous, state: Path, k: int
) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """The columns of ``images`` and ``scenes`` the changes are found in:
    the previous catalogue's partition and the shard's files."""
    was, will = _compared_columns()
    before = {n: previous.rows(n, k, c) for n, c in was.items()}
    now = {n: read_table(state / f"{n}.parquet", n, c) for n, c in will.items()}
    return before, now


def _compared_columns() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The columns of ``images`` and ``scenes`` compared for a partition's
    changes: before, and now (these also give the partition's figures)."""
    from biocodes.repository.history import IMAGE_COLUMNS, SCENE_COLUMNS

    was = {"images": IMAGE_COLUMNS, "scenes": SCENE_COLUMNS}
    will = {
        "images": [*IMAGE_COLUMNS, "run_id"],
        "scenes": [*SCENE_COLUMNS, "status", "nbytes"],
    }
    return was, will


def _stored_planes(
    previous: Previous, state: Path, k: int
) -> Callable[[pa.Array], tuple[pa.Table, pa.Table]]:
    """The plane digests of some images of partition ``k``, in the previous
    catalogue and in the shard's file (only theirs are read)."""
    from biocodes.repository.history import PLANE_COLUMNS

    def planes(changed: pa.Array) -> tuple[pa.Table, pa.Table]:
        wanted = pc.field("image_id").isin(changed)
        before = previous.rows("scenes", k, PLANE_COLUMNS, wanted)
        now = read_table(state / "scenes.parquet", "scenes", PLANE_COLUMNS, wanted)
        return before, now

    return planes


def _partition_figures(
    now: dict[str, pa.Table], run_id: str, removed: int
) -> dict[str, int]:
    """A partition's share of the ``runs`` figures (see :func:`run_figures`),
    from the shard's columns read for its changes."""
    empty = SCHEMAS["changes"].empty_table()
    found = run_figures(now["images"], now["scenes"], empty, (), run_id, removed)
    return {k: found[k] for k in PARTITION_FIGURES}


def index_duplicates(
    plan: MergePlan, out: Path, new: Path, config: dict, threads: int = 1
) -> None:
    """The ``duplicates`` table (derived: one partition) and the near pairs
    behind it: linked when no partition changed; else the scenes that can
    be in a group are found on the new code index, searching only codes the
    previous catalogue did not hold (see
    :mod:`biocodes.repository.candidates`), and grouped by
    :func:`biocodes.repository.duplicates.duplicate_table`."""
    from biocodes.repository.candidates import candidate_scenes
    from biocodes.repository.duplicates import duplicate_table, near_distances

    (new / "duplicates").mkdir()
    target = new / "duplicates" / part_file(0)
    if plan.duplicates_same:
        for f in table_files(out, "duplicates"):
            _link(f, new / "duplicates" / f.name)
        _link(out / PAIRS_FILE, new / PAIRS_FILE)
        return
    dup = near_distances(config.get("duplicates", {}))
    known = pq.read_table(out / PAIRS_FILE) if (out / PAIRS_FILE).is_file() else None
    found = candidate_scenes(new, out, dup, known, threads)
    if found is None:  # no index (cannot happen after index_codes)
        raise RuntimeError(f"{new}: the code index was not written")
    scenes, images, given = found
    duplicates, pairs = duplicate_table(scenes, images, **dup, given=given)
    del scenes, images
    pq.write_table(pairs, new / PAIRS_FILE, compression="zstd")
    del pairs
    write_atomic(sorted_batches("duplicates", duplicates), target)


def index_codes(
    plan: MergePlan, out: Path, new: Path, state_dirs: Sequence[str | os.PathLike]
) -> None:
    """The codes ``similar`` and the duplicates search read, packed (see
    :mod:`biocodes.repository.codeindex`), one index part per partition:
    linked from the previous catalogue when its partitions of the tables it
    indexes are the previous ones, from the shard's state when they are
    the shard's files (its job wrote the part beside them), else written."""
    from biocodes.repository.codeindex import shard_index, write_index

    indexed = ("scenes", "views", "plane_images")
    same = {
        Path(part_file(k)).stem
        for k in range(plan.shards)
        if plan.partitioned and all((name, k) in plan.same for name in indexed)
    }

    def written(part: str) -> Path | None:
        k = int(part.rsplit("-", 1)[1])
        state = Path(state_dirs[k])
        for name in indexed:
            mine = new / name / part_file(k)
            if os.stat(mine).st_ino != os.stat(state / f"{name}.parquet").st_ino:
                return None
        return shard_index(state)

    write_index(new, previous=out, same=same.__contains__, written=written)


def merged_already(out: Path, run_id: str) -> dict | None:
    """This run's ``runs`` row if the catalogue at ``out`` holds it."""
    import pyarrow.compute as pc

    if (out / "runs" / run_file(run_id)).is_file():
        return _previous_runs(out / "runs" / run_file(run_id)).to_pylist()[-1]
    if (out / "runs.parquet").is_file():  # a catalogue from before partitions
        runs = _previous_runs(out / "runs.parquet")
        for done in runs.filter(pc.equal(runs["run_id"], run_id)).to_pylist():
            return done
    return None


def record_run(
    out: Path,
    new: Path,
    run_id: str,
    started: str,
    config: dict,
    manifest: str | os.PathLike,
    merged: Merged,
    counts: Sequence[dict[str, int]],
) -> dict:
    """Add the run's files to ``changes`` and ``runs`` (the earlier runs'
    files linked, never rewritten) and return its ``runs`` row."""
    runs = _carry_runs(out, new)
    _carry_changes(out, new)
    write_atomic(
        sorted_batches("changes", merged.changes), new / "changes" / run_file(run_id)
    )
    figures = run_figures(
        SCHEMAS["images"].empty_table(),
        SCHEMAS["scenes"].empty_table(),
        merged.changes,
        counts,
        run_id,
    )
    for key in PARTITION_FIGURES:
        figures[key] = sum(int(f.get(key, 0)) for f in merged.figures)
    run = run_row(run_id, started, config, manifest, figures, runs[-1:])
    row = pa.Table.from_pylist([run], schema=SCHEMAS["runs"])
    write_atomic(row, new / "runs" / run_file(run_id))
    return run


def _carry_runs(out: Path, new: Path) -> list[dict]:
    """The earlier runs' files in the new catalogue (a single ``runs.parquet``
    from before partitions: one file per run); the last run's row."""
    (new / "runs").mkdir()
    legacy = out / "runs.parquet"
    if legacy.is_file() and not (out / "runs").is_dir():
        rows = _previous_runs(legacy).to_pylist()
        for row in rows:
            one = pa.Table.from_pylist([row], schema=SCHEMAS["runs"])
            write_atomic(one, new / "runs" / run_file(row["run_id"]))
        return rows[-1:]
    files = table_files(out, "runs")
    for f in files:
        _link(f, new / "runs" / f.name)
    return _previous_runs(files[-1]).to_pylist() if files else []


def _carry_changes(out: Path, new: Path) -> None:
    """The earlier runs' ``changes`` files in the new catalogue (a single
    ``changes.parquet`` from before partitions: split by run, once)."""
    (new / "changes").mkdir()
    legacy = out / "changes.parquet"
    if legacy.is_file() and not (out / "changes").is_dir():
        table = read_table(legacy, "changes")
        for run in sorted(set(table["run_id"].to_pylist())):
            rows = table.filter(pc.equal(table["run_id"], run))
            write_atomic(
                sorted_batches("changes", rows), new / "changes" / run_file(run)
            )
        return
    for f in table_files(out, "changes"):
        _link(f, new / "changes" / f.name)


def _link(source: Path, dest: Path) -> None:
    """The previous catalogue's file in the new one: a hard link (no bytes
    read or written), or a copy where links are not possible."""
    import shutil

    source = Path(os.path.realpath(source))
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def run_row(
    run_id: str,
    started: str,
    config: dict,
    manifest: str | os.PathLike,
    figures: dict[str, int],
    previous_runs: list[dict],
) -> dict:
    """This run's ``runs`` row (``figures``: see :func:`run_figures`)."""
    import json
    from datetime import UTC, datetime

    from biocodes.core.imagewalk import SPEC
    from biocodes.sources.base import WALK_RULES

    versions = code_versions()
    finished = (
        datetime.fromisoformat(started)  # reproducible: SOURCE_DATE_EPOCH fixes both
        if os.environ.get("SOURCE_DATE_EPOCH")
        else datetime.now(UTC).replace(microsecond=0)
    )
    return {
        "run_id": run_id,
        "started": datetime.fromisoformat(started),
        "finished": finished,
        "config_sha256": config_sha256(config),
        "config": json.dumps(redact(config), sort_keys=True, default=str),
        "versions": json.dumps(versions, sort_keys=True),
        "versions_changed": "; ".join(
            x
            for x in (
                _versions_changed(previous_runs, versions),
                _walk_rules_changed(previous_runs, WALK_RULES),
            )
            if x
        ),
        "imagewalk_spec": SPEC,
        **figures,
        "files_skipped": sum(skipped_files(manifest).values()),
        "walk_rules": WALK_RULES,
    }


def _n(count: int, noun: str) -> str:
    """``1 image``, ``2 images``: the summary is read by people."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def summary(catalogue_dir: str | os.PathLike) -> str:
    """A few lines for the end of a run: counts, failures (the cause in
    words; the reader's own message is in catalogue/errors/ and the logs),
    where the tables are."""
    import pyarrow.compute as pc

    from biocodes.infra.errors import short_cause

    out = Path(catalogue_dir)
    run = read_catalogue(out, "runs")[-1]
    errors = read_catalogue_table(out, "errors")
    failed, errors = errors.num_rows, errors.slice(0, 21).to_pylist()
    from biocodes.repository.report import failing_images

    failing = failing_images(out)
    partial = f", {failing[1]} ok but with a failed scene" if failing[1] else ""

    def n(key: str) -> int:
        return int(run.get(key) or 0)

    lines = [
        f"biocodes run {run['run_id']}: {_n(run['images'], 'image')} "
        f"({run['images_ok']} ok, {run['images_error']} failed{partial}), "
        f"{_n(run['scenes'], 'scene')} in the catalogue",
        f"  this run: pixels read for {_n(n('images_read'), 'image')} "
        f"({_n(n('scenes_read'), 'scene')}, {n('bytes_hashed') / 1e6:,.1f} MB), "
        f"{n('images_rehashed')} re-hashed as files and unchanged, "
        f"{n('images_reused')} unchanged (not opened), "
        f"{n('images_in_progress')} in progress (still being written: left for "
        f"a later run), {n('images_refused')} refused at the scan",
        f"  changes: {run['images_added']} added, {run['images_changed']} changed, "
        f"{run['images_touched']} touched, {run['images_removed']} removed, "
        f"{run['images_failed']} failed"
        + "".join(
            f", {n(f'images_{k}')} {k.replace('_', ' ')}"
            for k in ("still_failing", "recovered")
            if n(f"images_{k}")
        ),
    ]
    if run["files_skipped"]:
        lines.append(
            f"  {_n(run['files_skipped'], 'file')} skipped by include/exclude "
            "(by suffix in logs/manifest.log)"
        )
    if run["versions_changed"]:
        lines.append(
            f"  code versions changed since the last run: "
            f"{run['versions_changed']} (images re-read)"
        )
    known = {
        c["image_id"]: c["failing_since"]
        for c in read_catalogue_table(
            out,
            "changes",
            ["run_id", "image_id", "change", "failing_since"],
            (pc.field("run_id") == run["run_id"])
            & (pc.field("change") == "still_failing"),
        ).to_pylist()
    }

    def failed_line(e: dict) -> str:
        since = known.get(e["image_id"], "")
        head = f"still failing (since run {since})" if since else "failed"
        scene = "" if e["scene_index"] is None else f" (scene {e['scene_index']})"
        why = short_cause(e["message"], e["path"])
        return f"  {head}: {e['path']}{scene}: {e['error_type']}: {why}"

    lines += [failed_line(e) for e in errors[:20]]
    if failed > 20:
        lines.append(f"  ... and {failed - 20} more in catalogue/errors/")
    lines.append(f"catalogue: {os.path.abspath(out)}/{{{','.join(TABLES)}}}/")
    return "\n".join(lines)
