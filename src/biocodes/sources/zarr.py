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


def _codec_names(meta: object) -> list[str]:
    """Names of every codec, filter and compressor in array metadata, nested
    ones (sharding) included."""
    if isinstance(meta, dict):
        found = [str(meta[k]) for k in ("name", "id") if k in meta]
        return found + [n for v in meta.values() for n in _codec_names(v)]
    if isinstance(meta, list | tuple):
        return [n for v in meta for n in _codec_names(v)]
    return []


def _check_codecs(path: str, name: str, array) -> int | None:  # noqa: ANN001
    """Refuse codecs that run code from the store: numcodecs' pickle filter
    unpickles chunk bytes, so a scanned repository could run anything.

    Returns the decoded size of a chunk when chunks are blosc blobs (not in
    shards), whose headers are then checked before each read; else None.
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
    if array.shards is None and "blosc" in codecs:
        return int(np.prod(array.chunks)) * array.dtype.itemsize
    return None


class ZarrSource(PlaneSource):
    """An OME-Zarr image, multi-image store, or bioformats2raw tree.

    A chunk that is missing from the store reads as the fill value in zarr,
    which is also what a half-copied store looks like, so a plane with a
    missing chunk is an error unless ``allow_missing_chunks`` (for stores
    written without their all-fill chunks, zarr-python 3's default).
    """

    format = "ome-zarr"

    def __init__(self, path: str, allow_missing_chunks: bool = False) -> None:
        import zarr

        super().__init__(path)
        self.allow_missing_chunks = allow_missing_chunks
        try:
            root = zarr.open_group(path, mode="r")
            images = self._find_images(root)
        except (UnreadableError, UnsupportedError):
            raise
        except Exception as exc:
            raise UnreadableError(path, f"not a readable OME-Zarr ({exc})") from None
        if not images:
            raise UnsupportedError(path, "zarr store holds no OME-NGFF multiscales")
        #: (array, axis names, decoded blosc chunk size or None) per scene
        self._arrays: list[tuple[object, str, int | None]] = []
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
            blosc = _check_codecs(path, name, array)
            sizes = dict(zip(axes, array.shape))
            for a, n in sizes.items():
                if a not in "TCZYX" and n != 1:
                    raise UnsupportedError(
                        path,
                        f"image {name!r} has a non-standard axis {a!r} of size {n}",
                    )
            self._scenes.append(make_scene(path, index, name, sizes, array.dtype))
            self._arrays.append((array, axes, blosc))

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
        array, axes, blosc = self._arrays[scene.index]
        pos = {"Z": z, "C": c, "T": t}
        index = tuple(slice(None) if a in "YX" else pos.get(a, 0) for a in axes)
        self._check_chunks(
            array, index, blosc, f"scene {scene.index} plane z={z} c={c} t={t}"
        )
        try:
            return np.asarray(array[index])
        except Exception as exc:
            raise UnreadableError(
                self.path,
                f"cannot read scene {scene.index} plane z={z} c={c} t={t}: {exc}",
            ) from None

    def _check_chunks(self, array, index: tuple, blosc: int | None, where: str) -> None:  # noqa: ANN001
        """Raise if a chunk (or shard) holding this plane is missing from the
        store, or is a blosc chunk whose header disagrees with its size: blosc
        decodes a cut chunk into whatever memory follows, without an error."""
        import itertools
        import os

        grid = array.shards or array.chunks
        ranges = [
            range(-(-n // g)) if isinstance(i, slice) else [i // g]
            for i, n, g in zip(index, array.shape, grid)
        ]
        store, prefix = array.store_path.store, array.store_path.path
        root = getattr(store, "root", None)
        for coords in itertools.product(*ranges):
            key = array.metadata.encode_chunk_key(coords)
            key = f"{prefix}/{key}" if prefix else key
            if root is None:
                from zarr.core.sync import sync

                if not self.allow_missing_chunks and not sync(store.exists(key)):
                    raise UnreadableError(self.path, f"{where}: {_missing(key)}")
                continue
            path = os.path.join(root, key)
            if not os.path.exists(path):
                if self.allow_missing_chunks:
                    continue
                raise UnreadableError(self.path, f"{where}: {_missing(key)}")
            if blosc is not None:
                with open(path, "rb") as f:
                    head = f.read(16)
                size = os.path.getsize(path)
                if len(head) < 16 or (
                    int.from_bytes(head[12:16], "little"),
                    int.from_bytes(head[4:8], "little"),
                ) != (size, blosc):
                    raise UnreadableError(
                        self.path,
                        f"{where}: chunk {key} is truncated or damaged (its blosc "
                        f"header does not match its {size} bytes)",
                    )


def _missing(key: str) -> str:
    return (
        f"chunk {key} is missing from the store (a partial copy, or a writer "
        "that skips all-fill chunks, as zarr-python 3 does by default); set "
        "limits.allow_missing_chunks to read missing chunks as the fill value"
    )
