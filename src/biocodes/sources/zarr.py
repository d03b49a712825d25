"""OME-Zarr (NGFF 0.4 on zarr v2, 0.5 on zarr v3) and bioformats2raw trees.

Planes are zarr slices of the full-resolution level, so a read touches only
the chunks of that plane. Scenes are the multiscales images of the store; a
bioformats2raw root holds one image per numbered series, in numeric order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biocodes.errors import UnreadableError, UnsupportedError
from biocodes.sources.base import PlaneSource, SceneInfo, make_scene


def _ome_attrs(group) -> dict:  # noqa: ANN001
    """NGFF 0.5 nests its metadata under ``ome``; 0.4 keeps it at the top."""
    attrs = dict(group.attrs)
    return dict(attrs.get("ome", attrs))


def is_zarr_store(path: Path) -> bool:
    """Whether a directory looks like a zarr v2 or v3 group."""
    return path.is_dir() and any(
        (path / m).is_file() for m in ("zarr.json", ".zgroup", ".zattrs")
    )


def _axis_names(axes: list, ndim: int) -> str:
    names = [(a["name"] if isinstance(a, dict) else a).upper() for a in axes]
    if not names:  # NGFF 0.1/0.2 had no axes: always TCZYX
        names = list("TCZYX"[-ndim:])
    return "".join(n[:1] for n in names)


class ZarrSource(PlaneSource):
    """An OME-Zarr image, multi-image store, or bioformats2raw tree."""

    format = "ome-zarr"

    def __init__(self, path: str) -> None:
        import zarr

        super().__init__(path)
        try:
            root = zarr.open_group(path, mode="r")
            images = self._find_images(root)
        except (UnreadableError, UnsupportedError):
            raise
        except Exception as exc:
            raise UnreadableError(path, f"not a readable OME-Zarr ({exc})") from None
        if not images:
            raise UnsupportedError(path, "zarr store holds no OME-NGFF multiscales")
        self._arrays: list[tuple[object, str]] = []
        for index, (name, group, ms) in enumerate(images):
            try:
                array = group[ms["datasets"][0]["path"]]
            except Exception as exc:
                raise UnreadableError(
                    path, f"image {name!r} has no full-resolution array ({exc})"
                ) from None
            axes = _axis_names(ms.get("axes", []), array.ndim)
            if len(axes) != array.ndim or not axes.endswith("YX"):
                raise UnsupportedError(path, f"image {name!r} has axes {axes!r}")
            sizes = dict(zip(axes, array.shape))
            for a, n in sizes.items():
                if a not in "TCZYX" and n != 1:
                    raise UnsupportedError(
                        path,
                        f"image {name!r} has a non-standard axis {a!r} of size {n}",
                    )
            self._scenes.append(make_scene(path, index, name, sizes, array.dtype))
            self._arrays.append((array, axes))

    @staticmethod
    def _find_images(root) -> list[tuple[str, object, dict]]:  # noqa: ANN001
        attrs = _ome_attrs(root)
        if "multiscales" in attrs:
            name = Path(root.store_path.path or str(root.store)).name
            return [
                (ms.get("name") or name or f"Image:{i}", root, ms)
                for i, ms in enumerate(attrs["multiscales"])
            ]
        if "bioformats2raw.layout" in attrs or any(k.isdigit() for k in root):
            series = sorted((k for k in root.group_keys() if k.isdigit()), key=int)
            images = []
            for key in series:
                ms_list = _ome_attrs(root[key]).get("multiscales", [])
                if ms_list:
                    ms = ms_list[0]
                    images.append((ms.get("name") or f"Image:{key}", root[key], ms))
            return images
        if "plate" in attrs or "well" in attrs:
            raise UnsupportedError(
                str(root.store), "HCS plate layouts are not supported yet"
            )
        return []

    def _read_pixels(self, scene: SceneInfo, z: int, c: int, t: int) -> np.ndarray:
        array, axes = self._arrays[scene.index]
        pos = {"Z": z, "C": c, "T": t}
        index = tuple(slice(None) if a in "YX" else pos.get(a, 0) for a in axes)
        try:
            return np.asarray(array[index])
        except Exception as exc:
            raise UnreadableError(
                self.path,
                f"cannot read scene {scene.index} plane z={z} c={c} t={t}: {exc}",
            ) from None
