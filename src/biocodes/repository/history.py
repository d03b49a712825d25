"""What changed between the previous catalogue and this run, and what was removed.

Images that disappear keep their rows with ``status=removed``; every run adds
one ``changes`` row per image added, changed, touched (new mtime, same bytes),
removed or failed, or whose zarr store now holds a different number of its
chunks with the same codes (``chunks_absent``: the store was rewritten with or
without its all-fill chunks, or lost chunks that held only the fill value).
Unchanged images are not listed.

Both are computed on whole Arrow tables (joins and column comparisons), never
row by row: the merge runs every night over the whole catalogue.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: carried along for a removed image (a gone file's errors are moot)
CARRIED = ("images", "scenes", "simprints", "views")


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
) -> np.ndarray:
    """Per previous image (by position in ``prev_ids``): whether its scenes
    (count, or code at some scene index) differ in ``current``. Strings are
    turned into integer positions once (``index_in``); the comparison is
    numpy sorts and searches, not a join."""
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
    mine = cpos >= 0
    ckey, ccode, cpos = ckey[mine], ccode[mine], cpos[mine]
    differ = np.bincount(ppos[ppos >= 0], minlength=n) != np.bincount(cpos, minlength=n)
    order = np.argsort(pkey, kind="stable")
    pkey, pcode = pkey[order], pcode[order]
    at = np.minimum(np.searchsorted(pkey, ckey), max(0, len(pkey) - 1))
    if len(pkey):
        bad = (pkey[at] != ckey) | (pcode[at] != ccode)
    else:
        bad = np.ones(len(ckey), dtype=bool)
    differ[cpos[bad]] = True
    return differ


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


def changes_table(
    previous: dict[str, pa.Table], current: dict[str, pa.Table], run_id: str
) -> tuple[pa.Table, pa.Array]:
    """``changes`` rows for this run (unsorted), and the ids of the images
    that are gone (see :func:`carry`). Only :data:`IMAGE_COLUMNS` and
    :data:`SCENE_COLUMNS` of the ``images`` and ``scenes`` tables are used.
    Images are matched by position (``index_in``), never by a row loop or a
    string join, so a million images cost seconds and little memory."""
    from biocodes.repository.tables import SCHEMAS

    schema = SCHEMAS["changes"]
    prev_images, cur = previous["images"], current["images"]
    prev_ids = prev_images["image_id"].combine_chunks()  # index_in's value set
    pos = pc.index_in(cur["image_id"], value_set=prev_ids)

    def before(column: str) -> pa.Array:
        return prev_images[column].take(pos)

    status = before("status")
    known = pc.and_kleene(pc.is_valid(status), pc.not_equal(status, "removed"))
    known = known.fill_null(False).to_numpy(zero_copy_only=False)
    scenes_differ = _scenes_differ(previous["scenes"], current["scenes"], prev_ids)
    at = pos.fill_null(0).to_numpy(zero_copy_only=False)
    same_scenes = ~scenes_differ[at] if len(scenes_differ) else np.zeros(len(at), bool)
    previous_code = before("iscc_code")
    same_code = _same(previous_code, cur["iscc_code"])
    codes_changed = ~(known & same_code & same_scenes)
    moved = ~(
        _same(before("size"), cur["size"]) & _same(before("mtime_ns"), cur["mtime_ns"])
    )
    failed = pc.equal(cur["status"], "error").to_numpy(zero_copy_only=False)
    absent = _absent_changed(previous["scenes"], current["scenes"], prev_ids)
    absent_changed = absent[at] & known if len(absent) else np.zeros(len(at), bool)
    change = np.select(
        [failed, ~known, codes_changed, absent_changed, moved],
        ["failed", "added", "changed", "chunks_absent", "touched"],
        "",
    )
    noted = change != ""
    pick = pa.array(noted)
    t = cur.filter(pick)
    rows = pa.table(
        {
            "run_id": pa.array([run_id] * t.num_rows, pa.string()),
            "image_id": t["image_id"],
            "root": t["root"],
            "path": t["path"],
            "change": pa.array(change[noted], pa.string()),
            "codes_changed": pa.array(codes_changed[noted]),
            "previous_iscc_code": pc.if_else(
                pa.array(known), previous_code, pa.scalar(None, pa.string())
            ).filter(pick),
            "iscc_code": t["iscc_code"],
            "error": pc.if_else(
                pa.array(failed[noted]), t["error"], pa.scalar(None, pa.string())
            ),
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
        },
        schema=schema,
    )
    return pa.concat_tables([rows, removed]), gone_images["image_id"].combine_chunks()


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
