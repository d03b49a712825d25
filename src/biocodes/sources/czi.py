"""Zeiss CZI, read plane by plane with aicspylibczi.

bioio-czi's lazy path returns the first sample for every S of an RGB scene,
and its eager path reads the whole scene, so CZI gets its own adapter. CZI
stores RGB as blue-green-red; we walk samples as red, green, blue like every
other format. Mosaic files fall back to bioio (raise :class:`NotPlaneMappable`).
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


class CziSource(PlaneSource):
    """A non-mosaic CZI file."""

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
        if mosaic or pixel_type not in PIXEL_TYPES:
            raise NotPlaneMappable(f"mosaic={mosaic} pixel type {pixel_type}")
        dtype, samples = PIXEL_TYPES[pixel_type]
        self._czi = czi
        for shape in shapes:
            extra = {k: v for k, v in shape.items() if k not in "STCZYXA"}
            if any(hi - lo != 1 for lo, hi in extra.values()):
                raise NotPlaneMappable(f"axes {sorted(extra)}")
            sizes = {k: hi - lo for k, (lo, hi) in shape.items() if k in "TCZYX"}
            first, last = shape.get("S", (0, 1))
            for s in range(first, last):
                name = names.get(s, f"Scene:{s}")
                self._scenes.append(make_scene(path, s, name, sizes, dtype, samples))
        self._scenes.sort(key=lambda sc: sc.index)
        if [s.index for s in self._scenes] != list(range(len(self._scenes))):
            raise NotPlaneMappable("scene indices are not contiguous")
        found = safely(path, lambda: metadata.czi(czi.meta, len(self._scenes)), [])
        for i, meta in enumerate(found):
            meta = metadata.expand_channels(meta, self._scenes[i].samples)
            self._scenes[i] = replace(self._scenes[i], metadata=meta)

    def decoding(self, scene: SceneInfo) -> dict:
        """libCZI decodes (JPEG XR and zstd included); aicspylibczi does not
        say which compression the subblocks use."""
        return decoding(None, package_version("aicspylibczi"))

    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        try:
            data, _ = self._czi.read_image(S=scene.index, T=t, C=channel, Z=z)
        except Exception as exc:
            raise UnreadableError(
                self.path,
                f"cannot read scene {scene.index} plane z={z} c={channel} t={t}: {exc}",
            ) from None
        if scene.samples > 1:
            return data.reshape(data.shape[-3:])[..., ::-1]  # BGR -> RGB
        return data.reshape(data.shape[-2:])
