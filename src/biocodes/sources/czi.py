"""Zeiss CZI: scenes from aicspylibczi's subblock directory, planes read
with pylibCZIrw.

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

Pixels are read with pylibCZIrw, never with aicspylibczi's ``read_image``:
aicspylibczi 4.0.1 sizes that call's buffer from the first subblock, and a
later, larger one (a scene larger than the first, pylibCZIrw's defaults)
overflows the heap and aborts the process, a worker included. The two pixel
types pylibCZIrw does not read (gray32, gray64float) still go through
aicspylibczi, and bioio-czi's fallback reads with it too: both only where
every subblock has one size (:func:`unsafe_for_aicspylibczi`), else the
file is refused by name.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from biocodes.infra.errors import UnreadableError, UnsupportedError
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


#: the pixel types pylibCZIrw reads (its CziReader.PIXEL_TYPES, lower case)
PYLIBCZIRW_TYPES = frozenset(
    {"gray8", "gray16", "gray32float", "bgr24", "bgr48", "bgr96float"}
)


def layer0_subblocks(path: str) -> list[tuple[int | None, tuple[int, int, int, int]]]:
    """Each full-resolution subblock of the file as (scene index or None,
    its logical rectangle x, y, w, h), from the subblock directory."""
    from pylibCZIrw import czi as pyczi

    found: list[tuple[int | None, tuple[int, int, int, int]]] = []

    def add(_index: int, info) -> bool:  # noqa: ANN001
        r = info.logicalRect
        found.append((info.coordinate.to_dict().get("S"), (r.x, r.y, r.w, r.h)))
        return True

    with pyczi.open_czi(path) as doc:
        doc.enumerate_subblocks_subset(add, only_layer0=True)
    return found


def unsafe_for_aicspylibczi(path: str) -> str | None:
    """Why aicspylibczi's ``read_image`` must not read this file, or None:
    subblocks of more than one size, on which aicspylibczi 4.0.1 overflows
    the buffer it sized from the first and aborts the process (no exception
    to catch). Mosaic files are read with ``read_mosaic``, which sizes its
    buffer from the region asked for. A directory that cannot be listed is
    an error (the file is damaged): no read of unknown safety."""
    import aicspylibczi

    try:
        if aicspylibczi.CziFile(path).is_mosaic():
            return None
        sizes = {(w, h) for _, (_, _, w, h) in layer0_subblocks(path)}
    except Exception as exc:
        raise UnreadableError(
            path, f"the CZI subblock directory cannot be listed ({exc})"
        ) from None
    if len(sizes) <= 1:
        return None
    shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4])
    return (
        f"its subblocks differ in size ({shown}), which "
        f"{package_version('aicspylibczi')} cannot read without corrupting memory"
    )


def check_fallback_safe(path: str, refused: str) -> None:
    """Refuse a CZI that the bioio-czi fallback (aicspylibczi) would read
    with ``read_image`` where that call would abort the process; ``refused``
    is why the CZI adapter did not map it."""
    why = unsafe_for_aicspylibczi(path)
    if why is not None:
        raise UnsupportedError(
            path,
            f"a CZI layout biocodes' CZI reader does not map ({refused}), and "
            f"{why}: the bioio-czi fallback would crash; --reader bioformats "
            "may read it",
        )


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
        super().__init__(path)
        self._reader = None
        try:
            self._open(path)
        except BaseException:
            self.close()
            raise

    def _open(self, path: str) -> None:
        import aicspylibczi

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
        self._has_scenes = any("S" in shape for shape in shapes)
        #: per scene: the region pylibCZIrw reads (x, y, w, h)
        self._regions: dict[int, tuple[int, int, int, int]] = {}
        if pixel_type in PYLIBCZIRW_TYPES:
            subblocks = self._open_reader(path)
        else:  # gray32, gray64float: aicspylibczi only, where it is safe
            why = unsafe_for_aicspylibczi(path)
            if why is not None:
                raise UnsupportedError(
                    path,
                    f"CZI of {pixel_type} pixels, which only aicspylibczi "
                    f"reads, and {why}",
                )
            subblocks = []
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
        if self._reader is not None:
            self._regions = self._plane_regions(subblocks, mosaic)
        found = safely(path, lambda: metadata.czi(czi.meta, len(self._scenes)), [])
        for i, meta in enumerate(found):
            meta = metadata.expand_channels(meta, self._scenes[i].samples)
            self._scenes[i] = replace(self._scenes[i], metadata=meta)

    def _open_reader(self, path: str) -> list:
        """Open pylibCZIrw's reader; the full-resolution subblocks."""
        from pylibCZIrw import czi as pyczi

        try:
            subblocks = layer0_subblocks(path)
            self._reader = pyczi.CziReader(path)
        except Exception as exc:
            raise UnreadableError(path, f"not a readable CZI ({exc})") from None
        return subblocks

    def _plane_regions(
        self, subblocks: list, mosaic: bool
    ) -> dict[int, tuple[int, int, int, int]]:
        """Per scene, the region each plane is read from: a mosaic scene's
        bounding box; a single-tile scene's one rectangle, which every plane
        of it must share (else pylibCZIrw would draw planes smaller than the
        scene on background: pixels that are not stored)."""
        regions: dict[int, tuple[int, int, int, int]] = dict(self._boxes)
        if mosaic:
            return regions
        rects: dict[int, set] = {}
        for s, rect in subblocks:
            rects.setdefault(s or 0, set()).add(rect)
        for scene in self._scenes:
            found = rects.get(scene.index, set())
            if len(found) != 1:
                raise NotPlaneMappable(
                    f"scene {scene.index}: planes in {len(found)} regions"
                )
            rect = next(iter(found))
            if (rect[3], rect[2]) != (scene.size_y, scene.size_x):
                raise NotPlaneMappable(f"scene {scene.index}: region {rect}")
            regions[scene.index] = rect
        return regions

    def _scene_box(self, index: int, has_scenes: bool) -> tuple[int, int, int, int]:
        if has_scenes:
            box = self._czi.get_mosaic_scene_bounding_box(index=index)
        else:
            box = self._czi.get_mosaic_bounding_box()
        return (box.x, box.y, box.w, box.h)

    def decoding(self, scene: SceneInfo) -> dict:
        """libCZI decodes (JPEG XR and zstd included), through pylibCZIrw
        (aicspylibczi for gray32 and gray64float); neither says here which
        compression the subblocks use."""
        tool = "pylibczirw" if self._reader is not None else "aicspylibczi"
        return decoding(None, package_version(tool))

    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        if self._reader is not None:
            return self._read_pylibczirw(scene, z, channel, t)
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
            raise self._plane_error(scene, z, channel, t, exc) from None
        if scene.samples > 1:
            return data.reshape(data.shape[-3:])[..., ::-1]  # BGR -> RGB
        return data.reshape(data.shape[-2:])

    def _plane_error(
        self, scene: SceneInfo, z: int, channel: int, t: int, exc: Exception
    ) -> UnreadableError:
        return UnreadableError(
            self.path,
            f"cannot read scene {scene.index} plane z={z} c={channel} t={t}: {exc}",
        )

    def _read_pylibczirw(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        """One plane of a scene's region, composed by libCZI at full
        resolution from that scene's subblocks only."""
        has_scenes = self._has_scenes
        try:
            data = self._reader.read(
                roi=self._regions[scene.index],
                plane={"T": t, "C": channel, "Z": z},
                scene=scene.index if has_scenes else None,
            )
        except Exception as exc:
            raise self._plane_error(scene, z, channel, t, exc) from None
        if scene.samples > 1:
            return data[..., ::-1]  # BGR -> RGB
        return data[..., 0]

    def close(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()
            self._reader = None
