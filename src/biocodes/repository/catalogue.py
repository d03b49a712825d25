"""The shard merge: one run's shard tables into the catalogue, with the
run's row, its changes and duplicates.

Tables are written sorted and with fixed schemas, so two runs over the same
pixels produce byte-identical tables apart from run metadata. Every write goes
to a temporary file that is renamed into place: a reader never sees half a
table.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from biocodes.repository.tables import (
    SCHEMAS,
    SHARD_TABLES,
    TABLES,
    read_table,
    read_tables,
    rebatch,
    sorted_batches,
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
) -> dict:
    """Merge the shards' tables with the previous catalogue into a new one.

    Removed images keep their rows (``status=removed``); ``changes`` and
    ``runs`` grow by this run's rows; ``duplicates`` is recomputed. The cost
    follows the changes: a table whose inputs (the shards' files, see
    :func:`merge_inputs`) are those the previous merge read is the previous
    file, linked, not re-read; ``changes`` is appended to, not re-sorted.
    Other tables stay Arrow columns throughout (joins, filters, sorts in
    pyarrow's C++, no Python object per row), one table at a time, written
    sorted one row group at a time. The whole catalogue is swapped in at once
    (:func:`biocodes.infra.atomic.atomic_dir`), so a reader or a crash never
    sees half of it. Returns the new ``runs`` row.
    """
    import json

    import pyarrow.compute as pc

    from biocodes.infra.atomic import atomic_dir
    from biocodes.repository.codeindex import write_index
    from biocodes.repository.duplicates import duplicate_table
    from biocodes.repository.history import (
        IMAGE_COLUMNS,
        PLANE_COLUMNS,
        SCENE_COLUMNS,
        carry,
        changed_ids,
        changes_table,
        failing_since,
        with_planes_changed,
    )

    out = Path(out_dir)

    def states(
        name: str, columns: Sequence[str] | None = None, filter: object = None
    ) -> pa.Table:
        return read_tables(
            [Path(d) / f"{name}.parquet" for d in state_dirs], name, columns, filter
        )

    def before(
        name: str, columns: Sequence[str] | None = None, filter: object = None
    ) -> pa.Table:
        return read_table(out / f"{name}.parquet", name, columns, filter)

    run_id, started = run_info(manifest)
    runs = _previous_runs(out / "runs.parquet")
    for done in runs.filter(pc.equal(runs["run_id"], run_id)).to_pylist():
        # this run is merged already (its job failed after the catalogue was
        # swapped in, e.g. writing the report): merging it again would
        # record it twice, the second time as a night without changes
        return done
    inputs = merge_inputs(state_dirs, config)
    same = _unchanged(out, inputs)
    columns = {"images": IMAGE_COLUMNS, "scenes": SCENE_COLUMNS}
    failures = before(
        "changes",
        ["run_id", "image_id", "change", "failing_since"],
        pc.field("change").isin(["failed", "still_failing"]),
    )
    change_rows, gone = changes_table(
        {n: before(n, c) for n, c in columns.items()},
        {n: states(n, c) for n, c in columns.items()},
        run_id,
        failing_since(failures),
    )
    if len(changed := changed_ids(change_rows)):  # which planes: digests of those
        found = pc.field("image_id").isin(changed)
        change_rows = with_planes_changed(
            change_rows,
            before("scenes", PLANE_COLUMNS, found),
            states("scenes", PLANE_COLUMNS, found),
        )
    dup = config.get("duplicates", {})
    with atomic_dir(out_dir, keep=3) as new:
        (new / "_merge").mkdir()

        def write(name: str, table: pa.Table | pa.RecordBatchReader) -> None:
            if isinstance(table, pa.Table):
                table = sorted_batches(name, table)
            write_atomic(table, new / f"{name}.parquet")
            pa.default_memory_pool().release_unused()

        def merged(name: str) -> pa.Table:
            """This run's rows of a shard table, and the gone images' rows."""
            table = states(name)
            if name != "errors" and len(gone):  # a gone file's errors are moot
                found = pc.field("image_id").isin(gone)
                table = pa.concat_tables(
                    [table, carry(name, before(name, filter=found), gone)]
                )
            return table

        for name in SHARD_TABLES:  # one table in memory at a time
            if name in same:
                _link(out / f"{name}.parquet", new / f"{name}.parquet")
            else:
                write(name, merged(name))
        # the counts need three columns of each; the duplicates, when their
        # inputs changed, the codes too
        search = "duplicates" not in same
        images = states(
            "images",
            ["image_id", "status", "run_id", *(["root", "format"] if search else [])],
        )
        codes = ["path", "scene_index", "iscc_code", "data_code", "iscc_mixed"]
        scenes = states(
            "scenes", ["image_id", "status", "nbytes", *(codes if search else [])]
        )
        if not search:
            for name in ("duplicates.parquet", PAIRS_FILE):
                _link(out / name, new / name)
        else:
            duplicates, pairs = duplicate_table(
                scenes,
                images,
                data_distance=dup.get("data_distance", 24),
                mixed_distance=dup.get("mixed_distance", 8),
                known=_known_pairs(out, before),
            )
            pq.write_table(pairs, new / PAIRS_FILE, compression="zstd")
            del pairs
            scenes = scenes.select(["image_id", "status", "nbytes"])  # codes: freed
            write("duplicates", duplicates)
            del duplicates
        write("changes", _changes(out / "changes.parquet", change_rows, run_id))
        run = run_row(
            run_id,
            started,
            config,
            manifest,
            images,
            scenes,
            change_rows,
            counts,
            runs.slice(max(0, runs.num_rows - 1)).to_pylist(),
            removed=len(gone),
        )
        write(
            "runs",
            pa.concat_tables(
                [runs, pa.Table.from_pylist([run], schema=SCHEMAS["runs"])]
            ),
        )
        # the codes `similar` searches, packed (linked when scenes and the
        # view tables are the previous catalogue's; else new codes decoded)
        indexed = {"scenes", "views", "plane_images"}
        write_index(new, previous=out, unchanged=indexed <= same)
        (new / INPUTS_FILE).write_text(json.dumps(inputs, indent=1, sort_keys=True))
    return run


#: the near pairs a merge found, for the next merge (not a catalogue table)
PAIRS_FILE = "_merge/near_pairs.parquet"
#: what each table of a catalogue was made of (see :func:`merge_inputs`)
INPUTS_FILE = "_merge/inputs.json"
#: bumped whenever the merge would write a table from the same inputs
#: differently: a file from before is then never taken for this merge's
MERGE_FORMAT = 1


def merge_inputs(
    state_dirs: Sequence[str | os.PathLike], config: dict
) -> dict[str, str]:
    """Per table the merge derives from the shards' files, a digest of its
    inputs: each shard file's real path, size, mtime and inode (a shard
    that changes writes a new file in a new directory; one that does not
    keeps its files), the schema, :data:`MERGE_FORMAT` and pyarrow's version.
    Tables that carry a removed image's rows (all but ``errors``) depend on
    the shards' ``images`` too (which ids are gone); ``duplicates`` on the
    ``images``, ``scenes`` and the distances. Equal digests mean equal
    tables, so a quiet shard's rows are never read again to write them."""
    import hashlib
    import json

    def stat(path: Path) -> list | None:
        try:
            st = os.stat(path)  # through the state's symlink
        except FileNotFoundError:
            return None
        return [os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino]

    files = {
        name: [stat(Path(d) / f"{name}.parquet") for d in state_dirs]
        for name in SHARD_TABLES
    }
    base = [MERGE_FORMAT, pa.__version__]

    def digest(name: str, *parts: object) -> str:
        text = json.dumps([base, name, str(SCHEMAS[name]), *parts], default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    found = {}
    for name in SHARD_TABLES:
        carried = [] if name == "errors" else [files["images"]]
        found[name] = digest(name, files[name], *carried)
    dup = config.get("duplicates", {})
    distances = [dup.get("data_distance", 24), dup.get("mixed_distance", 8)]
    found["duplicates"] = digest(
        "duplicates", files["images"], files["scenes"], distances
    )
    return found


def _unchanged(out: Path, inputs: dict[str, str]) -> set[str]:
    """The tables of the catalogue at ``out`` made of exactly ``inputs``."""
    import json

    path = out / INPUTS_FILE
    if not path.exists():
        return set()
    previous = json.loads(path.read_text())
    same = {
        name
        for name, digest in inputs.items()
        if previous.get(name) == digest and (out / f"{name}.parquet").is_file()
    }
    if not (out / PAIRS_FILE).is_file():
        same.discard("duplicates")
    return same


def _link(source: Path, dest: Path) -> None:
    """The previous catalogue's file in the new one: a hard link (no bytes
    read or written), or a copy where links are not possible."""
    import shutil

    source = Path(os.path.realpath(source))
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _changes(
    path: Path, rows: pa.Table, run_id: str
) -> pa.Table | pa.RecordBatchReader:
    """The ``changes`` table with this run's rows: the previous file's rows
    streamed as they are, then this run's, sorted, when this run sorts after
    every earlier one (the usual case: run ids are start times); otherwise
    the whole table, to be sorted."""
    import pyarrow.compute as pc

    name = "changes"
    if not path.exists():
        return rows
    last = pc.max(read_table(path, name, ["run_id"])["run_id"]).as_py()
    if last is not None and not run_id > last:
        return pa.concat_tables([read_table(path, name), rows])
    schema = SCHEMAS[name]
    previous = pq.ParquetFile(path)
    if previous.schema_arrow != schema:  # columns added since: read in this schema
        return pa.concat_tables([read_table(path, name), rows])
    mine = sorted_batches(name, rows)
    return rebatch(schema, itertools.chain(previous.iter_batches(), mine))


def _known_pairs(out_dir: Path, before: Any) -> dict[str, tuple[pa.Array, pa.Table]]:
    """Per near kind: the codes the previous merge searched (its live scenes'
    codes) and the pairs it found, if it kept them."""
    import pyarrow.compute as pc

    path = out_dir / PAIRS_FILE
    if not path.exists():
        return {}
    pairs = pq.read_table(path)
    scenes = before("scenes", ["status", "iscc_code", "data_code", "iscc_mixed"])
    live = scenes.filter(
        pc.and_(pc.equal(scenes["status"], "ok"), pc.is_valid(scenes["iscc_code"]))
    )
    return {
        kind: (
            pc.unique(live[column].drop_null()),
            pairs.filter(pc.equal(pairs["kind"], kind)),
        )
        for kind, column in (("near_data", "data_code"), ("near_mixed", "iscc_mixed"))
    }


def run_row(
    run_id: str,
    started: str,
    config: dict,
    manifest: str | os.PathLike,
    images: pa.Table,
    scenes: pa.Table,
    change_rows: pa.Table,
    counts: Sequence[dict[str, int]],
    previous_runs: list[dict],
    removed: int = 0,
) -> dict:
    """This run's ``runs`` row (see :func:`run_figures` for the counts)."""
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
        **run_figures(images, scenes, change_rows, counts, run_id, removed),
        "files_skipped": sum(skipped_files(manifest).values()),
        "walk_rules": WALK_RULES,
    }


def _n(count: int, noun: str) -> str:
    """``1 image``, ``2 images``: the summary is read by people."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def summary(catalogue_dir: str | os.PathLike) -> str:
    """A few lines for the end of a run: counts, failures (the cause in
    words; the reader's own message is in errors.parquet and the logs),
    where the tables are."""
    import pyarrow.compute as pc

    from biocodes.infra.errors import short_cause

    out = Path(catalogue_dir)
    run = pq.read_table(out / "runs.parquet").to_pylist()[-1]
    errors = pq.read_table(out / "errors.parquet").slice(0, 21).to_pylist()
    failed = pq.read_metadata(out / "errors.parquet").num_rows
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
        for c in read_table(
            out / "changes.parquet",
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
        lines.append(f"  ... and {failed - 20} more in errors.parquet")
    lines.append(f"catalogue: {os.path.abspath(out)}/{{{','.join(TABLES)}}}.parquet")
    return "\n".join(lines)
