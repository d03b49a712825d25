"""What changed between the previous catalogue and this run, and what was removed.

Images that disappear keep their rows with ``status=removed``; every run adds
one ``changes`` row per image added, changed, touched (new mtime, same bytes),
removed or failed. Unchanged images are not listed.

Both are computed on whole Arrow tables (joins and column comparisons), never
row by row: the merge runs every night over the whole catalogue.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

#: carried along for a removed image (a gone file's errors are moot)
CARRIED = ("images", "scenes", "simprints", "views")


def code_signature(images: pa.Table, scenes: pa.Table) -> pa.Table:
    """``image_id`` and ``sig``: an image's raw-file code and its scenes'
    codes in scene order, as one string, so two runs' codes compare as one
    column."""
    ordered = scenes.select(["image_id", "scene_index", "iscc_code"]).sort_by(
        [("image_id", "ascending"), ("scene_index", "ascending")]
    )
    ordered = ordered.set_column(
        2, "iscc_code", pc.fill_null(ordered["iscc_code"], "\0")
    )
    per_image = ordered.group_by("image_id", use_threads=False).aggregate(
        [("iscc_code", "list")]
    )
    joined = pc.binary_join(per_image["iscc_code_list"], "\x1f")
    scene_sig = pa.table({"image_id": per_image["image_id"], "_scenes": joined})
    t = images.select(["image_id", "iscc_code"]).join(
        scene_sig, "image_id", join_type="left outer"
    )
    sig = pc.binary_join_element_wise(
        pc.fill_null(t["iscc_code"], "\0"), pc.fill_null(t["_scenes"], ""), "\x1e"
    )
    return pa.table({"image_id": t["image_id"], "sig": sig})


#: the columns :func:`changes_table` reads
IMAGE_COLUMNS = ["image_id", "root", "path", "status", "size", "mtime_ns"]
IMAGE_COLUMNS += ["iscc_code", "error"]
SCENE_COLUMNS = ["image_id", "scene_index", "iscc_code"]


def changes_table(
    previous: dict[str, pa.Table], current: dict[str, pa.Table], run_id: str
) -> tuple[pa.Table, pa.Array]:
    """``changes`` rows for this run (unsorted), and the ids of the images
    that are gone (see :func:`carry`). Only :data:`IMAGE_COLUMNS` and
    :data:`SCENE_COLUMNS` of the ``images`` and ``scenes`` tables are used."""
    from biocodes.catalogue import SCHEMAS

    schema = SCHEMAS["changes"]
    prev_images, cur_images = previous["images"], current["images"]
    before = prev_images.select(["image_id", "status", "size", "mtime_ns", "iscc_code"])
    before = before.rename_columns(["image_id", "_status", "_size", "_mtime", "_code"])
    old = code_signature(prev_images, previous["scenes"]).rename_columns(
        ["image_id", "_old"]
    )
    new = code_signature(cur_images, current["scenes"]).rename_columns(
        ["image_id", "_new"]
    )
    cols = ["image_id", "root", "path", "status", "size", "mtime_ns", "iscc_code"]
    t = cur_images.select([*cols, "error"])
    t = t.join(before, "image_id", join_type="left outer")
    t = t.join(old, "image_id", join_type="left outer")
    t = t.join(new, "image_id", join_type="left outer")
    # a removed image that is back counts as added
    known = pc.and_kleene(
        pc.is_valid(t["_status"]), pc.not_equal(t["_status"], "removed")
    ).fill_null(False)
    codes_changed = pc.invert(
        pc.and_(known, pc.equal(t["_old"], t["_new"]).fill_null(False))
    )
    moved = pc.or_(
        pc.not_equal(t["_size"], t["size"]), pc.not_equal(t["_mtime"], t["mtime_ns"])
    ).fill_null(True)
    failed = pc.equal(t["status"], "error")
    change = pc.case_when(
        pc.make_struct(
            failed,
            pc.invert(known),
            codes_changed,
            moved,
            field_names=["failed", "added", "changed", "touched"],
        ),
        "failed",
        "added",
        "changed",
        "touched",
    )
    t = t.append_column("change", change).append_column("codes_changed", codes_changed)
    t = t.filter(pc.is_valid(t["change"]))
    known = pc.and_kleene(
        pc.is_valid(t["_status"]), pc.not_equal(t["_status"], "removed")
    ).fill_null(False)
    previous_code = pc.if_else(known, t["_code"], pa.scalar(None, pa.string()))
    rows = pa.table(
        {
            "run_id": pa.array([run_id] * t.num_rows, pa.string()),
            "image_id": t["image_id"],
            "root": t["root"],
            "path": t["path"],
            "change": t["change"],
            "codes_changed": t["codes_changed"],
            "previous_iscc_code": previous_code,
            "iscc_code": t["iscc_code"],
            "error": pc.if_else(
                pc.equal(t["change"], "failed"),
                t["error"],
                pa.scalar(None, pa.string()),
            ),
        },
        schema=schema,
    )

    gone_mask = pc.invert(pc.is_in(prev_images["image_id"], cur_images["image_id"]))
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
