"""Zeiss CZI, read plane by plane with aicspylibczi.

bioio-czi's lazy path returns the first sample for every S of an RGB scene,
and its eager path reads the whole scene, so CZI gets its own adapter. CZI
stores RGB as blue-green-red; we walk samples as red, green, blue like every
other format.

A mosaic scene (tiles with an M index) is one plane per (T, C, Z): the tiles
that aicspylibczi's ``read_mosaic`` draws into the scene's own bounding box.
Scenes come from the subblock directory (``get_dims_shape``), never from the
metadata's scene list, which pylibCZIrw does not write: bioio-czi takes
the whole file as one mosaic and silently loses the other scenes. A layout
this adapter does not map (scenes whose regions overlap, unusual axes) falls
back to bioio (raise :class:`NotPlaneMappable`), and that route must list
the directory's scene count (:func:`check_fallback`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from biocodes.infra.errors import UnreadableError
from biocodes.sources import metadata
from biocodes.sources.base import (
    PlaneSource,
    SceneInfo,
    decoding,
    make_scene,
    package_version,
)
from biocodes.sources.metadata import safely

PIXEL_TYPES = {
    "gray8": ("uint8", 1),
    "gray16": ("uint16", 1),
    "gray32": ("int32", 1),
    "gray32float": ("float32", 1),
    "gray64float": ("float64", 1),
    "bgr24": ("uint8", 3),
    "bgr48": ("uint16", 3),
    "bgr96float": ("float32", 3),
}


class NotPlaneMappable(Exception):
    """A CZI layout (mosaic, unusual axes) that this adapter does not map."""


def _scene_names(czi) -> dict[int, str]:  # noqa: ANN001
    names = {}
    for i, node in enumerate(czi.meta.findall(".//Dimensions/S/Scenes/Scene")):
        names[int(node.get("Index", i))] = node.get("Name") or f"Scene:{i}"
    return names


def directory_scenes(shapes: list[dict]) -> list[int]:
    """The scene indices of the subblock directory (``get_dims_shape``)."""
    found = set()
    for shape in shapes:
        found.update(range(*shape.get("S", (0, 1))))
    return sorted(found)


def check_fallback(path: str, source: PlaneSource) -> None:
    """A fallback route must list the scenes the subblock directory holds:
    bioio-czi lists them from the metadata, which some writers leave out."""
    import aicspylibczi

    try:
        count = len(directory_scenes(aicspylibczi.CziFile(path).get_dims_shape()))
    except Exception:  # unreadable directory: the fallback's own read decides
        return
    if len(source.scenes) != count:
        name = "Bio-Formats" if source.format == "bioformats" else "bioio-czi"
        raise UnreadableError(
            path,
            f"{name} lists {len(source.scenes)} scene(s), but the CZI "
            f"subblock directory holds {count}; a scene would be lost",
        )


def _overlapping(czi, boxes: dict[int, tuple]) -> str | None:  # noqa: ANN001
    """A tile drawn into another scene's region (read_mosaic cannot select by
    scene), named, or None."""
    for tile, box in czi.get_all_tile_bounding_boxes().items():
        own = tile.dimension_coordinates.get("S", 0)
        for s, (x, y, w, h) in boxes.items():
            if s == own:
                continue
            if (
                box.x < x + w
                and x < box.x + box.w
                and box.y < y + h
                and y < box.y + box.h
            ):
                return f"a tile of scene {own} lies in scene {s}'s region"
    return None


class CziSource(PlaneSource):
    """A CZI file: single-tile scenes plane by plane, mosaic scenes as the
    tiles drawn into each scene's bounding box."""

    format = "czi"

    def __init__(self, path: str) -> None:
        import aicspylibczi

        super().__init__(path)
        try:
            czi = aicspylibczi.CziFile(path)
            mosaic = czi.is_mosaic()
            shapes = czi.get_dims_shape()
            pixel_type = str(czi.pixel_type).lower()
            names = _scene_names(czi)
        except Exception as exc:
            raise UnreadableError(path, f"not a readable CZI ({exc})") from None
        if pixel_type not in PIXEL_TYPES:
            raise NotPlaneMappable(f"pixel type {pixel_type}")
        dtype, samples = PIXEL_TYPES[pixel_type]
        self._czi = czi
        #: per mosaic scene: its region (x, y, w, h) and the axes to select
        self._boxes: dict[int, tuple[int, int, int, int]] = {}
        self._axes: dict[int, str] = {}
        for shape in shapes:
            extra = {k: v for k, v in shape.items() if k not in "STCZYXAM"}
            if any(hi - lo != 1 for lo, hi in extra.values()):
                raise NotPlaneMappable(f"axes {sorted(extra)}")
            sizes = {k: hi - lo for k, (lo, hi) in shape.items() if k in "TCZYX"}
            first, last = shape.get("S", (0, 1))
            for s in range(first, last):
                if mosaic:
                    box = self._scene_box(s, "S" in shape)
                    sizes = {**sizes, "Y": box[3], "X": box[2]}
                    self._boxes[s] = box
                    self._axes[s] = "".join(k for k in "TCZ" if k in shape)
                name = names.get(s, f"Scene:{s}")
                self._scenes.append(make_scene(path, s, name, sizes, dtype, samples))
        if mosaic:
            why = safely(path, lambda: _overlapping(czi, self._boxes), "unknown")
            if why is not None:
                raise NotPlaneMappable(f"mosaic scenes overlap: {why}")
        self._scenes.sort(key=lambda sc: sc.index)
        if [s.index for s in self._scenes] != list(range(len(self._scenes))):
            raise NotPlaneMappable("scene indices are not contiguous")
        found = safely(path, lambda: metadata.czi(czi.meta, len(self._scenes)), [])
        for i, meta in enumerate(found):
            meta = metadata.expand_channels(meta, self._scenes[i].samples)
            self._scenes[i] = replace(self._scenes[i], metadata=meta)

    def _scene_box(self, index: int, has_scenes: bool) -> tuple[int, int, int, int]:
        if has_scenes:
            box = self._czi.get_mosaic_scene_bounding_box(index=index)
        else:
            box = self._czi.get_mosaic_bounding_box()
        return (box.x, box.y, box.w, box.h)

    def decoding(self, scene: SceneInfo) -> dict:
        """libCZI decodes (JPEG XR and zstd included); aicspylibczi does not
        say which compression the subblocks use."""
        return decoding(None, package_version("aicspylibczi"))

    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        try:
            if scene.index in self._boxes:
                planes = dict(zip("TCZ", (t, channel, z)))
                select = {k: planes[k] for k in self._axes[scene.index]}
                data = self._czi.read_mosaic(
                    region=self._boxes[scene.index], scale_factor=1.0, **select
                )
            else:
                data, _ = self._czi.read_image(S=scene.index, T=t, C=channel, Z=z)
        except Exception as exc:
            raise UnreadableError(
                self.path,
                f"cannot read scene {scene.index} plane z={z} c={channel} t={t}: {exc}",
            ) from None
        if scene.samples > 1:
            return data.reshape(data.shape[-3:])[..., ::-1]  # BGR -> RGB
        return data.reshape(data.shape[-2:])
