"""HCS plates in OME-Zarr (NGFF 0.4 / zarr v2, 0.5 / zarr v3, bioformats2raw
plates): every field of every well is a scene.

Scenes are ordered as the NGFF spec lists a plate's dimensions: plate
acquisition (by id; fields without one first), then well row, well column
(by ``rowIndex``/``columnIndex``), then field (the position of the image
among the well's images of that acquisition). Each scene carries ``plate``,
``well`` (row name + column name, e.g. ``B3``), ``field`` and
``acquisition``. Only the plate's and wells' small attributes are read to
list the fields; a field whose group or metadata cannot be read is that
field's failure, listed with the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Field:
    """One field of view: where it is, and its group (or why it has none)."""

    path: str  # e.g. "B/3/0", relative to the plate
    meta: dict  # plate, well, field, acquisition
    group: Any = None
    multiscales: dict | None = None
    error: str | None = None


def _ome_attrs(group: Any) -> dict:
    attrs = dict(group.attrs)
    return dict(attrs.get("ome", attrs))


def _index(names: list[str], name: str) -> int:
    try:
        return names.index(name)
    except ValueError:
        return len(names)


def _open_field(field: Field, parent: Any, key: str) -> Field:
    try:
        group = parent[key]
        ms = _ome_attrs(group).get("multiscales") or []
        if not ms:
            raise ValueError("no multiscales")
        field.group, field.multiscales = group, ms[0]
    except Exception as exc:  # any damage: this field's error, not the plate's
        field.error = f"field {field.path} cannot be opened ({exc})"
    return field


def open_fields(fields: list[Field], root: Any, only: range | None = None) -> None:
    """Open the groups of the fields (those in ``only``, by scene index):
    listing a plate reads only plate and well attributes, so a task that
    hashes some fields of a large plate opens only those."""
    for index, f in enumerate(fields):
        if f.error is None and f.group is None and (only is None or index in only):
            _open_field(f, root, f.path)


def well_fields(well: Any, well_path: str, meta: dict) -> list[Field]:
    """The fields of one well group, ordered by acquisition then position
    (not opened: see :func:`open_fields`)."""
    images = _ome_attrs(well).get("well", {}).get("images", [])
    seen: dict[Any, int] = {}
    fields = []
    for image in images:
        acq = image.get("acquisition")  # an integer id in the spec
        acq = int(acq) if isinstance(acq, int) or str(acq).isdigit() else None
        number = seen.get(acq, 0)
        seen[acq] = number + 1
        path = str(image.get("path", ""))
        fields.append(
            Field(
                f"{well_path}/{path}".strip("/"),
                {**meta, "field": number, "acquisition": acq},
            )
        )
    return fields


def plate_fields(root: Any, name: str) -> list[Field]:
    """Every field of a plate group, in scene order (see the module doc),
    not opened (see :func:`open_fields`)."""
    plate = _ome_attrs(root)["plate"]
    rows = [str(r.get("name", "")) for r in plate.get("rows", [])]
    columns = [str(c.get("name", "")) for c in plate.get("columns", [])]
    plate_name = plate.get("name") or name
    keyed = []
    for well in plate.get("wells", []):
        path = str(well.get("path", ""))
        parts = path.split("/")
        row_name, col_name = [*parts, "", ""][:2]
        r = well.get("rowIndex", _index(rows, row_name))
        c = well.get("columnIndex", _index(columns, col_name))
        if r < len(rows):
            row_name = rows[r]
        if c < len(columns):
            col_name = columns[c]
        meta = {"plate": plate_name, "well": f"{row_name}{col_name}"}
        try:
            group = root[path]
        except Exception as exc:
            field = Field(path, {**meta, "field": None, "acquisition": None})
            field.error = f"well {path} cannot be opened ({exc})"
            keyed.append(((-1, r, c, 0), field))
            continue
        for f in well_fields(group, path, meta):
            acq = f.meta["acquisition"]
            keyed.append(((-1 if acq is None else acq, r, c, f.meta["field"]), f))
    keyed.sort(key=lambda kv: kv[0])
    return [f for _, f in keyed]
