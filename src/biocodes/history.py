"""What changed between the previous catalogue and this run, and what was removed.

Images that disappear keep their rows with ``status=removed``; every run adds
one ``changes`` row per image added, changed, touched (new mtime, same bytes),
removed or failed. Unchanged images are not listed.
"""

from __future__ import annotations

from collections.abc import Iterable


def _by_image(rows: Iterable[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for r in rows:
        found.setdefault(r["image_id"], []).append(r)
    return found


def _codes(image: dict | None, scenes: list[dict]) -> tuple:
    if image is None:
        return ()
    return (image.get("iscc_code"), tuple(s["iscc_code"] for s in scenes))


def changes(
    previous: dict[str, list[dict]], current: dict[str, list[dict]], run_id: str
) -> tuple[list[dict], dict[str, list[dict]]]:
    """``changes`` rows for this run, and the removed images' rows to carry on.

    ``previous`` and ``current`` map table names to rows. Removed images keep
    all their rows; their ``images`` and ``scenes`` rows get ``status=removed``.
    """
    prev_images = {r["image_id"]: r for r in previous.get("images", [])}
    prev_scenes = _by_image(previous.get("scenes", []))
    cur_scenes = _by_image(current["scenes"])
    rows: list[dict] = []

    def note(image: dict, change: str, before: dict | None, old: tuple = ()) -> None:
        new = _codes(image, cur_scenes.get(image["image_id"], []))
        rows.append(
            {
                "run_id": run_id,
                "image_id": image["image_id"],
                "root": image["root"],
                "path": image["path"],
                "change": change,
                "codes_changed": change != "removed" and old != new,
                "previous_iscc_code": before and before.get("iscc_code"),
                "iscc_code": None if change == "removed" else image.get("iscc_code"),
                "error": image.get("error") if change == "failed" else None,
            }
        )

    seen = set()
    for image in current["images"]:
        iid = image["image_id"]
        seen.add(iid)
        before = prev_images.get(iid)
        if before is not None and before["status"] == "removed":
            before = None
        old = _codes(before, prev_scenes.get(iid, []))
        if image["status"] == "error":
            note(image, "failed", before, old)
        elif before is None:
            note(image, "added", None)
        elif old != _codes(image, cur_scenes.get(iid, [])):
            note(image, "changed", before, old)
        elif (before["size"], before["mtime_ns"]) != (image["size"], image["mtime_ns"]):
            note(image, "touched", before, old)

    carried: dict[str, list[dict]] = {name: [] for name in previous}
    gone = {iid for iid in prev_images if iid not in seen}
    for name, items in previous.items():
        if name not in current or name == "errors":  # a gone file's errors are moot
            continue
        for r in items:
            if r["image_id"] in gone:
                if name in ("images", "scenes"):
                    r = {**r, "status": "removed"}
                carried[name].append(r)
    for iid in sorted(gone):
        if prev_images[iid]["status"] != "removed":
            note(prev_images[iid], "removed", prev_images[iid])
    return rows, carried
