"""An in-memory array as a plane source: the ground truth for tests and examples."""

from __future__ import annotations

import numpy as np

from biocodes.sources.base import PlaneSource, SceneInfo, make_scene


class ArraySource(PlaneSource):
    """Scenes given as numpy arrays in TCZYX order, with an optional trailing S."""

    format = "array"

    def __init__(self, scenes: list[np.ndarray], path: str = "<array>") -> None:
        super().__init__(path)
        self._arrays = []
        for i, a in enumerate(scenes):
            a = np.asarray(a)
            if a.ndim == 5:
                a = a[..., np.newaxis]
            if a.ndim != 6:
                raise ValueError("scenes must be TCZYX or TCZYXS arrays")
            sizes = dict(zip("TCZYX", a.shape[:5]))
            self._scenes.append(
                make_scene(path, i, f"Image:{i}", sizes, a.dtype, a.shape[5])
            )
            self._arrays.append(a)

    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        pixels = self._arrays[scene.index][t, channel, z]
        return pixels if scene.samples > 1 else pixels[..., 0]
