"""What changed between the previous catalogue and this run, and what was removed.

Images that disappear keep their rows with ``status=removed``; every run adds
one ``changes`` row per image added, changed, touched (new mtime, same bytes),
recovered, removed, failed (a new failure) or still failing (a known one,
with the run it first failed in), or whose zarr store now holds a different
number of its chunks with the same codes (``chunks_absent``: the store was
rewritten with or without its all-fill chunks, or lost chunks that held only
the fill value). Unchanged images are not listed.

``recovered`` is a repair, not a pixel change: an image that failed (or had
a scene without a code, such as a plate's field with a missing chunk) and
now reads, with every code it had before unchanged. ``codes_changed`` is
kept for codes that changed from one code to another; for those,
``planes_changed`` says which planes differ (:func:`with_planes_changed`,
from the plane digests of those images only).

Both are computed on whole Arrow tables (joins and column comparisons), never
row by row: the merge runs every night over the whole catalogue.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: carried along for a removed image (a gone file's errors are moot)
CARRIED = ("images", "scenes", "simprints", "views", "plane_images")


#: the columns :func:`changes_table` reads
IMAGE_COLUMNS = ["image_id", "root", "path", "status", "size", "mtime_ns"]
IMAGE_COLUMNS += ["iscc_code", "error"]
SCENE_COLUMNS = ["image_id", "scene_index", "iscc_code", "chunks_absent"]


def _same(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Elementwise equality where two nulls are equal."""
    eq = pc.equal(a, b).fill_null(False)
    both = pc.and_(pc.is_null(a), pc.is_null(b))
    return pc.or_(eq, both).to_numpy(zero_copy_only=False)


def _scenes_differ(
    previous: pa.Table, current: pa.Table, prev_ids: pa.Array
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per previous image (by position in ``prev_ids``): whether its scenes
    (count, or code at some scene index) differ in ``current``; whether a
    scene that had a code lost it or has another one now (``lost``); and
    whether it had a scene without a code (``gaps``). Strings are turned into
    integer positions once (``index_in``); the comparison is numpy sorts and
    searches, not a join."""
    n = len(prev_ids)

    def positions(scenes: pa.Table) -> np.ndarray:
        pos = pc.index_in(scenes["image_id"], value_set=prev_ids)
        return pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    codes = pc.unique(previous["iscc_code"].drop_null())

    def code_ids(scenes: pa.Table) -> np.ndarray:
        ids = pc.index_in(scenes["iscc_code"], value_set=codes).fill_null(-3)
        ids = pc.if_else(pc.is_null(scenes["iscc_code"]), -2, ids)  # null == null
        return ids.to_numpy(zero_copy_only=False).astype(np.int64)

    ppos, cpos = positions(previous), positions(current)
    pidx = previous["scene_index"].to_numpy().astype(np.int64)
    cidx = current["scene_index"].to_numpy().astype(np.int64)
    pkey, ckey = (ppos << 32) | pidx, (cpos << 32) | cidx
    pcode, ccode = code_ids(previous), code_ids(current)
    mine, known = cpos >= 0, ppos >= 0
    ckey, ccode, cpos = ckey[mine], ccode[mine], cpos[mine]
    differ = np.bincount(ppos[known], minlength=n) != np.bincount(cpos, minlength=n)

    def unmatched(
        keys: np.ndarray, codes: np.ndarray, other_keys: np.ndarray, other: np.ndarray
    ) -> np.ndarray:
        """Which (key, code) pairs have no equal pair among the others."""
        order = np.argsort(other_keys, kind="stable")
        other_keys, other = other_keys[order], other[order]
        if not len(other_keys):
            return np.ones(len(keys), dtype=bool)
        at = np.minimum(np.searchsorted(other_keys, keys), len(other_keys) - 1)
        return (other_keys[at] != keys) | (other[at] != codes)

    differ[cpos[unmatched(ckey, ccode, pkey, pcode)]] = True
    coded = known & (pcode >= 0)  # every scene that had a code keeps it
    missing = unmatched(pkey[coded], pcode[coded], ckey, ccode)
    lost = np.bincount(ppos[coded][missing], minlength=n) > 0
    gaps = np.bincount(ppos[known & (pcode == -2)], minlength=n) > 0
    return differ, lost, gaps


def failing_since(previous_changes: pa.Table) -> pa.Table:
    """Per image whose latest ``failed``/``still_failing`` row is in
    ``previous_changes`` (columns ``run_id``, ``image_id``, ``change``,
    ``failing_since``): the run it first failed in, in this spell of
    failures. Rows from before ``failing_since`` existed count from their own
    run."""
    t = previous_changes.filter(
        pc.is_in(previous_changes["change"], pa.array(["failed", "still_failing"]))
    )
    since = pc.coalesce(t["failing_since"], t["run_id"])
    t = pa.table({"image_id": t["image_id"], "run_id": t["run_id"], "since": since})
    t = t.sort_by([("image_id", "ascending"), ("run_id", "ascending")])
    last = t.group_by("image_id", use_threads=False).aggregate([("since", "last")])
    return last.rename_columns(["image_id", "failing_since"])


def _absent_changed(
    previous: pa.Table, current: pa.Table, prev_ids: pa.Array
) -> np.ndarray:
    """Per previous image (by position in ``prev_ids``): whether a scene
    known before and now has a different ``chunks_absent`` (a count not
    recorded on either side, an older catalogue's, is no change)."""
    n = len(prev_ids)

    def keyed(scenes: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scenes = scenes.filter(pc.is_valid(scenes["chunks_absent"]))
        pos = pc.index_in(scenes["image_id"], value_set=prev_ids).fill_null(-1)
        pos = pos.to_numpy(zero_copy_only=False).astype(np.int64)
        index = scenes["scene_index"].to_numpy().astype(np.int64)
        count = scenes["chunks_absent"].to_numpy().astype(np.int64)
        mine = pos >= 0
        return (pos[mine] << 32) | index[mine], count[mine], pos[mine]

    pkey, pcount, _ = keyed(previous)
    ckey, ccount, cpos = keyed(current)
    differ = np.zeros(n, dtype=bool)
    if not len(pkey) or not len(ckey):
        return differ
    order = np.argsort(pkey, kind="stable")
    pkey, pcount = pkey[order], pcount[order]
    at = np.minimum(np.searchsorted(pkey, ckey), len(pkey) - 1)
    differ[cpos[(pkey[at] == ckey) & (pcount[at] != ccount)]] = True
    return differ


def _since(
    ids: pa.ChunkedArray | pa.Array,
    kinds: pa.Array | pa.ChunkedArray,
    run_id: str,
    failures: pa.Table | None,
) -> pa.Array:
    """``failing_since`` of changes rows: this run for a new failure, the
    run it first failed in (``failures``, see :func:`failing_since`) for a
    known one, else null."""
    since = pa.nulls(len(ids), pa.string())
    if failures is not None and failures.num_rows:
        where = pc.index_in(ids, value_set=failures["image_id"])
        since = failures["failing_since"].combine_chunks().take(where)
    return pc.if_else(
        pc.equal(kinds, "failed"),
        pa.scalar(run_id),
        pc.if_else(
            pc.equal(kinds, "still_failing"), since, pa.scalar(None, pa.string())
        ),
    )


def dated(rows: pa.Table, run_id: str, failures: pa.Table | None) -> pa.Table:
    """``changes`` rows found without the history (by a shard job: see
    :func:`biocodes.repository.catalogue.write_partition_changes`) with
    their ``failing_since`` from ``failures``."""
    since = _since(rows["image_id"], rows["change"], run_id, failures)
    at = rows.schema.get_field_index("failing_since")
    return rows.set_column(at, rows.schema.field(at), since)


def changes_table(
    previous: dict[str, pa.Table],
    current: dict[str, pa.Table],
    run_id: str,
    failures: pa.Table | None = None,
) -> tuple[pa.Table, pa.Array]:
    """``changes`` rows for this run (unsorted), and the ids of the images
    that are gone (see :func:`carry`). Only :data:`IMAGE_COLUMNS` and
    :data:`SCENE_COLUMNS` of the ``images`` and ``scenes`` tables are used;
    ``failures`` (see :func:`failing_since`) dates the known failures.
    Images are matched by position (``index_in``), never by a row loop or a
    string join, so a million images cost seconds and little memory."""
    from biocodes.repository.tables import SCHEMAS

    schema = SCHEMAS["changes"]
    prev_images, cur = previous["images"], current["images"]
    prev_ids = prev_images["image_id"].combine_chunks()  # index_in's value set
    pos = pc.index_in(cur["image_id"], value_set=prev_ids)

    def before(column: str) -> pa.Array:
        return prev_images[column].take(pos)

    def mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
        return array.fill_null(False).to_numpy(zero_copy_only=False)

    status = before("status")
    known = mask(pc.and_kleene(pc.is_valid(status), pc.not_equal(status, "removed")))
    differ, lost, gaps = _scenes_differ(previous["scenes"], current["scenes"], prev_ids)
    at = pos.fill_null(0).to_numpy(zero_copy_only=False)
    if not len(differ):  # no previous image: nothing is the same
        differ, lost, gaps = np.ones(1, bool), np.ones(1, bool), np.zeros(1, bool)
    same_scenes = ~differ[at]
    previous_code = before("iscc_code")
    same_code = _same(previous_code, cur["iscc_code"])
    codes_changed = ~(known & same_code & same_scenes)
    moved = ~(
        _same(before("size"), cur["size"]) & _same(before("mtime_ns"), cur["mtime_ns"])
    )
    failed = mask(pc.equal(cur["status"], "error"))
    failed_before = known & mask(pc.equal(status, "error"))
    # a repair: it failed (or lacked a scene's code) and reads now, every
    # code it had kept: not a pixel change
    recovered = known & (failed_before | gaps[at]) & ~lost[at] & codes_changed
    absent = _absent_changed(previous["scenes"], current["scenes"], prev_ids)
    absent_changed = absent[at] & known if len(absent) else np.zeros(len(at), bool)
    change = np.select(
        [
            failed & failed_before,
            failed,
            ~known,
            recovered,
            codes_changed,
            absent_changed,
            moved,
        ],
        [
            "still_failing",
            "failed",
            "added",
            "recovered",
            "changed",
            "chunks_absent",
            "touched",
        ],
        "",
    )
    codes_changed &= change == "changed"
    noted = change != ""
    pick = pa.array(noted)
    t = cur.filter(pick)
    kinds = pa.array(change[noted], pa.string())
    since = _since(t["image_id"], kinds, run_id, failures)
    rows = pa.table(
        {
            "run_id": pa.array([run_id] * t.num_rows, pa.string()),
            "image_id": t["image_id"],
            "root": t["root"],
            "path": t["path"],
            "change": kinds,
            "codes_changed": pa.array(codes_changed[noted]),
            "previous_iscc_code": pc.if_else(
                pa.array(known), previous_code, pa.scalar(None, pa.string())
            ).filter(pick),
            "iscc_code": t["iscc_code"],
            "error": pc.if_else(
                pa.array(failed[noted]), t["error"], pa.scalar(None, pa.string())
            ),
            "failing_since": since,
            "planes_changed": pa.nulls(t.num_rows, pa.string()),
        },
        schema=schema,
    )

    gone_mask = pc.invert(pc.is_in(prev_ids, cur["image_id"]))
    gone_images = prev_images.filter(gone_mask)
    newly = gone_images.filter(pc.not_equal(gone_images["status"], "removed"))
    removed = pa.table(
        {
            "run_id": pa.array([run_id] * newly.num_rows, pa.string()),
            "image_id": newly["image_id"],
            "root": newly["root"],
            "path": newly["path"],
            "change": pa.array(["removed"] * newly.num_rows, pa.string()),
            "codes_changed": pa.array([False] * newly.num_rows, pa.bool_()),
            "previous_iscc_code": newly["iscc_code"],
            "iscc_code": pa.array([None] * newly.num_rows, pa.string()),
            "error": pa.array([None] * newly.num_rows, pa.string()),
            "failing_since": pa.nulls(newly.num_rows, pa.string()),
            "planes_changed": pa.nulls(newly.num_rows, pa.string()),
        },
        schema=schema,
    )
    return pa.concat_tables([rows, removed]), gone_images["image_id"].combine_chunks()


#: the scenes columns :func:`with_planes_changed` reads (of changed images only)
PLANE_COLUMNS = ["image_id", "scene_index", "iscc_code", "dtype", "plane_digests"]
PLANE_COLUMNS += ["size_z", "size_c", "size_t", "size_y", "size_x"]


def changed_ids(changes: pa.Table) -> pa.Array:
    """The images whose pixel code changed from one code to another: the
    only ones whose plane digests :func:`with_planes_changed` needs."""
    return changes.filter(pc.equal(changes["change"], "changed"))["image_id"]


def with_planes_changed(
    changes: pa.Table, previous: pa.Table, current: pa.Table
) -> pa.Table:
    """``changes`` with ``planes_changed`` set for every ``changed`` image
    ("1 of 8 planes differs: z=2 c=1 t=0"), from the :data:`PLANE_COLUMNS`
    of its scenes before (``previous``) and now (``current``); pass only
    the scenes of :func:`changed_ids`, so a night reads the digests of the
    images that changed, not of the catalogue."""
    from biocodes.core.planediff import image_difference

    def by_image(scenes: pa.Table) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for s in scenes.to_pylist():
            out.setdefault(s["image_id"], []).append(s)
        return out

    before, after = by_image(previous), by_image(current)
    text = [
        image_difference(before.get(i, []), after.get(i, [])) or None
        if kind == "changed"
        else None
        for i, kind in zip(
            changes["image_id"].to_pylist(), changes["change"].to_pylist()
        )
    ]
    at = changes.schema.get_field_index("planes_changed")
    return changes.set_column(at, "planes_changed", pa.array(text, pa.string()))


def carry(name: str, previous: pa.Table, gone: pa.Array) -> pa.Table:
    """The previous rows of images that are gone, to keep in the catalogue:
    ``images`` and ``scenes`` rows get ``status=removed``."""
    table = previous.filter(pc.is_in(previous["image_id"], gone))
    if name in ("images", "scenes"):
        status = pa.array(["removed"] * table.num_rows, pa.string())
        table = table.set_column(
            table.schema.get_field_index("status"), "status", status
        )
    return table
