"""OME-Zarr (NGFF 0.4 on zarr v2, 0.5 on zarr v3) and bioformats2raw trees,
on local disk or remote (``s3://``, ``http(s)://``, see :mod:`biocodes.remote`).

Planes are zarr slices of the full-resolution level, so a read touches only
the chunks of that plane. Scenes are the multiscales images of the store; a
bioformats2raw root holds one image per numbered series, in numeric order.
Every chunk passes through :class:`~biocodes.sources.zarr_store.CheckedStore`,
the same checks for local and remote stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from biocodes.errors import UnreadableError, UnsupportedError
from biocodes.limits import Limits
from biocodes.remote import url_name
from biocodes.sources.base import PlaneSource, SceneInfo, make_scene


def _ome_attrs(group) -> dict:  # noqa: ANN001
    """NGFF 0.5 nests its metadata under ``ome``; 0.4 keeps it at the top."""
    attrs = dict(group.attrs)
    return dict(attrs.get("ome", attrs))


class ChunkError(Exception):
    """A chunk the read needs is missing or damaged (raised by the store)."""


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


def _codec_names(meta: object) -> list[str]:
    """Names of every codec, filter and compressor in array metadata, nested
    ones (sharding) included."""
    if isinstance(meta, dict):
        found = [str(meta[k]) for k in ("name", "id") if k in meta]
        return found + [n for v in meta.values() for n in _codec_names(v)]
    if isinstance(meta, list | tuple):
        return [n for v in meta for n in _codec_names(v)]
    return []


def _outermost_codec(meta: dict) -> str | None:
    """Name of the codec whose output is the bytes stored on disk: the last
    bytes-to-bytes codec of a zarr v3 chain, the compressor of a v2 array (its
    filters run before it), or None when chunks are stored raw."""
    if "codecs" in meta:
        codecs = list(meta["codecs"] or [])
        return str(codecs[-1].get("name")) if codecs else None
    compressors = meta.get("compressors") or meta.get("compressor")
    if isinstance(compressors, dict):
        compressors = [compressors]
    if compressors:
        return str(compressors[-1].get("id") or compressors[-1].get("name"))
    return None


def _check_codecs(path: str, name: str, array) -> bool:  # noqa: ANN001
    """Refuse codecs that run code from the store: numcodecs' pickle filter
    unpickles chunk bytes, so a scanned repository could run anything.

    Returns whether each stored chunk is one bare blosc frame (blosc is the
    outermost codec and chunks are not in shards); only then are its headers
    checked before each read, because numcodecs' blosc decodes a cut frame
    into whatever memory follows. Every other codec chain is left to the
    codecs' own errors and checksums (crc32c, zstd, zlib).
    """
    meta = array.metadata.to_dict()
    codecs = _codec_names(
        [meta.get(k) for k in ("codecs", "filters", "compressor", "compressors")]
    )
    bad = sorted({c for c in codecs if "pickle" in c.lower()})
    if bad:
        raise UnsupportedError(
            path,
            f"image {name!r} uses the {', '.join(bad)} codec, which would execute "
            "code stored in the file; refused",
        )
    return array.shards is None and _outermost_codec(meta) == "blosc"


class ZarrSource(PlaneSource):
    """An OME-Zarr image, multi-image store, or bioformats2raw tree.

    A chunk missing from the store is an error unless
    ``limits.allow_missing_chunks`` (for stores written without their
    all-fill chunks, zarr-python 3's default); see
    :class:`~biocodes.sources.zarr_store.CheckedStore`.
    """

    format = "ome-zarr"

    def __init__(self, path: str, limits: Limits | None = None) -> None:
        import zarr

        from biocodes.sources.zarr_store import open_store

        super().__init__(path)
        limits = limits or Limits()
        try:
            self._store = open_store(path, limits)
            root = zarr.open_group(store=self._store, mode="r")
            images = self._find_images(root, url_name(path) or Path(path).name)
        except (UnreadableError, UnsupportedError):
            raise
        except Exception as exc:
            raise UnreadableError(path, f"not a readable OME-Zarr ({exc})") from None
        if not images:
            raise UnsupportedError(path, "zarr store holds no OME-NGFF multiscales")
        #: (array, axis names) per scene
        self._arrays: list[tuple[Any, str]] = []
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
            self._store.arrays[array.store_path.path] = _check_codecs(path, name, array)
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
    def _find_images(root, name: str) -> list[tuple[str, object, dict]]:  # noqa: ANN001
        attrs = _ome_attrs(root)
        if "multiscales" in attrs:
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
            raise UnsupportedError(name, "HCS plate layouts are not supported yet")
        return []

    def _read_pixels(self, scene: SceneInfo, z: int, c: int, t: int) -> np.ndarray:
        array, axes = self._arrays[scene.index]
        pos = {"Z": z, "C": c, "T": t}
        index = tuple(slice(None) if a in "YX" else pos.get(a, 0) for a in axes)
        where = f"scene {scene.index} plane z={z} c={c} t={t}"
        try:
            return np.asarray(array[index])
        except (ChunkError, UnreadableError) as exc:
            message = exc.cause if isinstance(exc, UnreadableError) else str(exc)
            raise UnreadableError(self.path, f"{where}: {message}") from None
        except Exception as exc:
            raise UnreadableError(self.path, f"cannot read {where}: {exc}") from None
