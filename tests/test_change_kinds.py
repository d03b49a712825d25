"""The kinds of change a night records: a repair is ``recovered`` (no red
box), a known failure is ``still_failing`` with the run it first failed in,
and only a code that changed from one code to another is ``codes_changed``."""

import pyarrow as pa

from biocodes.repository.history import changes_table, failing_since
from biocodes.repository.tables import to_table


def image(image_id, status="ok", code="ISCC:A", size=10, mtime=1, error=None):
    return {
        "image_id": image_id,
        "root": "lab",
        "path": f"{image_id}.tif",
        "status": status,
        "size": size,
        "mtime_ns": mtime,
        "iscc_code": code,
        "error": error,
    }


def scene(image_id, index, code):
    return {
        "image_id": image_id,
        "scene_index": index,
        "iscc_code": code,
        "status": "ok" if code else "error",
    }


def night(images, scenes):
    return {"images": to_table("images", images), "scenes": to_table("scenes", scenes)}


def kinds(before, after, failures=None, run_id="r2"):
    rows, _ = changes_table(before, after, run_id, failures)
    return {r["path"]: r for r in rows.to_pylist()}


def test_a_repaired_file_and_a_restored_chunk_are_recoveries():
    before = night(
        [
            image("bad", "error", None, size=5, error="truncated"),
            image("plate", code="ISCC:P1"),
            image("edit", code="ISCC:E1"),
        ],
        [
            scene("plate", 0, "ISCC:F0"),
            scene("plate", 1, None),  # a field with a missing chunk
            scene("edit", 0, "ISCC:S0"),
        ],
    )
    after = night(
        [
            image("bad", code="ISCC:B", size=10, mtime=2),
            image("plate", code="ISCC:P2", mtime=2),
            image("edit", code="ISCC:E2", mtime=2),
        ],
        [
            scene("bad", 0, "ISCC:B0"),
            scene("plate", 0, "ISCC:F0"),
            scene("plate", 1, "ISCC:F1"),
            scene("edit", 0, "ISCC:S1"),
        ],
    )
    got = kinds(before, after)
    assert {p: r["change"] for p, r in got.items()} == {
        "bad.tif": "recovered",
        "plate.tif": "recovered",
        "edit.tif": "changed",
    }
    assert not got["bad.tif"]["codes_changed"]
    assert not got["plate.tif"]["codes_changed"]
    assert got["edit.tif"]["codes_changed"]


def test_a_plate_whose_coded_field_changed_is_not_a_recovery():
    before = night(
        [image("plate", code="ISCC:P1")],
        [scene("plate", 0, "ISCC:F0"), scene("plate", 1, None)],
    )
    after = night(
        [image("plate", code="ISCC:P2", mtime=2)],
        [scene("plate", 0, "ISCC:G0"), scene("plate", 1, "ISCC:F1")],
    )
    row = kinds(before, after)["plate.tif"]
    assert row["change"] == "changed" and row["codes_changed"]


def test_a_known_failure_is_still_failing_since_its_first_night():
    bad = image("bad", "error", None, error="truncated")
    first = night([], [])
    second = night([bad], [])
    rows1, _ = changes_table(first, second, "r1")
    assert rows1["change"].to_pylist() == ["failed"]
    assert rows1["failing_since"].to_pylist() == ["r1"]
    rows2, _ = changes_table(second, second, "r2", failing_since(rows1))
    assert rows2["change"].to_pylist() == ["still_failing"]
    assert rows2["failing_since"].to_pylist() == ["r1"]
    history = pa.concat_tables([rows1, rows2])
    rows3, _ = changes_table(second, second, "r3", failing_since(history))
    assert rows3["change"].to_pylist() == ["still_failing"]
    assert rows3["failing_since"].to_pylist() == ["r1"]
    # a catalogue from before failing_since: the failure counts from its row
    old = rows1.set_column(
        rows1.schema.get_field_index("failing_since"),
        "failing_since",
        pa.nulls(1, pa.string()),
    )
    rows4, _ = changes_table(second, second, "r4", failing_since(old))
    assert rows4["failing_since"].to_pylist() == ["r1"]
