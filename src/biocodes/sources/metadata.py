"""Scene metadata a reader gives: physical pixel sizes with units, channel
names, acquisition date. Metadata only: it never enters a code, and a
metadata problem never fails an image (the field stays empty).

Each adapter calls the parser for its format at the end of opening and
stores the result in :attr:`SceneInfo.metadata` with the keys of
:data:`FIELDS`; a key is absent when the file does not say.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: the keys of ``SceneInfo.metadata`` (and the catalogue's scenes columns)
FIELDS = (
    "physical_size_x",
    "physical_size_y",
    "physical_size_z",
    "physical_unit_x",
    "physical_unit_y",
    "physical_unit_z",
    "channel_names",
    "acquisition_date",
)

log = logging.getLogger(__name__)


#: the (field, failure) pairs already logged in this process
_LOGGED: set[tuple[str, str]] = set()


def safely(
    what: str, parse: Callable[[], Any], default: Any, field: str = "metadata"
) -> Any:
    """``parse()``, or ``default`` if it fails: a field that describes a
    scene (its metadata, codec, decoder) never fails the image; it stays
    empty. Each kind of failure is logged once per process (a warning naming
    the field, the file and why), not once per image: a reader quirk met on
    a million files is one line."""
    try:
        return parse()
    except Exception as exc:  # a description never fails an image
        key = (field, f"{type(exc).__name__}: {exc}")
        if key not in _LOGGED:
            _LOGGED.add(key)
            log.warning("%s: %s left empty (%s)", what, field, key[1])
        return default


def _positive(value: Any) -> float | None:
    number = float(value)
    return number if number > 0 else None


def _clean(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k in FIELDS and v not in (None, [], "")}


def ome_xml(xml: str) -> list[dict[str, Any]]:
    """Per OME ``Image`` (in document order): PhysicalSizeX/Y/Z with their
    units (OME's default is µm), channel names and AcquisitionDate."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    found = []
    for image in root.iter():
        if not image.tag.endswith("}Image") and image.tag != "Image":
            continue
        meta: dict[str, Any] = {}
        for child in image:
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "AcquisitionDate" and child.text:
                meta["acquisition_date"] = child.text.strip()
            if tag != "Pixels":
                continue
            for axis in "XYZ":
                size = child.get(f"PhysicalSize{axis}")
                if size is not None and _positive(size):
                    meta[f"physical_size_{axis.lower()}"] = float(size)
                    meta[f"physical_unit_{axis.lower()}"] = child.get(
                        f"PhysicalSize{axis}Unit", "µm"
                    )
            names = [
                c.get("Name") or ""
                for c in child
                if c.tag.rsplit("}", 1)[-1] == "Channel"
            ]
            if any(names):
                meta["channel_names"] = names
        found.append(_clean(meta))
    return found


def ngff(multiscale: Mapping[str, Any], omero: Mapping[str, Any] | None) -> dict:
    """From NGFF multiscales: the full-resolution scale (times the
    multiscale's own scale, if any) per spatial axis with the axis unit;
    channel labels from ``omero``."""
    axes = [a if isinstance(a, dict) else {"name": a} for a in multiscale["axes"]]
    scale = [1.0] * len(axes)
    transforms = list(multiscale["datasets"][0].get("coordinateTransformations", []))
    transforms += list(multiscale.get("coordinateTransformations", []))
    for t in transforms:
        if t.get("type") == "scale":
            scale = [a * float(b) for a, b in zip(scale, t["scale"])]
    meta: dict[str, Any] = {}
    for axis, factor in zip(axes, scale):
        name = str(axis.get("name", "")).lower()
        if name in ("x", "y", "z") and axis.get("unit"):
            meta[f"physical_size_{name}"] = factor
            meta[f"physical_unit_{name}"] = str(axis["unit"])
    channels = (omero or {}).get("channels") or []
    labels = [str(c.get("label") or "") for c in channels]
    if any(labels):
        meta["channel_names"] = labels
    return _clean(meta)


def czi(meta_xml: Any, scenes: int) -> list[dict[str, Any]]:
    """From CZI metadata (an ElementTree element): Scaling, in metres as the
    format defines it (recorded as written, unit ``m``: pylibCZIrw writes µm
    values there, ZEN metres), channel names and AcquisitionDateAndTime; the
    same for every scene."""
    meta: dict[str, Any] = {}
    for distance in meta_xml.iter("Distance"):
        axis = (distance.get("Id") or "").lower()
        value = distance.findtext("Value")
        if axis in ("x", "y", "z") and value and _positive(value):
            meta[f"physical_size_{axis}"] = float(value)
            meta[f"physical_unit_{axis}"] = "m"
    channels = meta_xml.find(".//Information/Image/Dimensions/Channels")
    if channels is not None:
        names = [c.get("Name") or "" for c in channels.findall("Channel")]
        if any(names):
            meta["channel_names"] = names
    date = meta_xml.findtext(".//Information/Image/AcquisitionDateAndTime")
    if date:
        meta["acquisition_date"] = date.strip()
    return [_clean(meta) for _ in range(scenes)]


def bioio_scene(img: Any) -> dict[str, Any]:
    """From a bioio image at its current scene: physical pixel sizes (bioio
    reports µm) and channel names."""
    meta: dict[str, Any] = {}
    sizes = img.physical_pixel_sizes
    for axis in "XYZ":
        value = getattr(sizes, axis, None)
        if value is not None and value > 0:
            meta[f"physical_size_{axis.lower()}"] = float(value)
            meta[f"physical_unit_{axis.lower()}"] = "µm"
    names = [str(n) for n in (img.channel_names or [])]
    # bioio invents "Channel:0:0" when a file names none
    if names and not all(n.startswith("Channel:") for n in names):
        meta["channel_names"] = names
    return _clean(meta)


def expand_channels(meta: dict[str, Any], samples: int) -> dict[str, Any]:
    """Channel names for a scene whose RGB samples are channels: ``name:R``,
    ``name:G``, ``name:B`` (IMAGEWALK's channel order)."""
    names: Sequence[str] = meta.get("channel_names") or []
    if samples <= 1 or not names:
        return meta
    labels = "RGBA"[:samples] if samples <= 4 else [str(i) for i in range(samples)]
    return {**meta, "channel_names": [f"{n}:{s}" for n in names for s in labels]}
