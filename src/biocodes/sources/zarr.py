"""OME-Zarr (NGFF 0.4 on zarr v2, 0.5 on zarr v3) and bioformats2raw trees,
on local disk or remote (``s3://``, ``http(s)://``, see :mod:`biocodes.infra.remote`).

Planes are zarr slices of the full-resolution level, so a read touches only
the chunks of that plane. Scenes are the multiscales images of the store; a
bioformats2raw root holds one image per numbered series, in numeric order.
Every chunk passes through :class:`~biocodes.sources.zarr_store.CheckedStore`,
the same checks for local and remote stores.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from biocodes.infra.errors import (
    BiocodeError,
    EmptyImageError,
    UnreadableError,
    UnsupportedError,
)
from biocodes.infra.limits import Limits
from biocodes.infra.remote import RemoteStore, url_name
from biocodes.sources import metadata
from biocodes.sources.base import (
    ChunkError,
    PlaneSource,
    SceneInfo,
    decoding,
    make_scene,
    package_version,
)
from biocodes.sources.metadata import safely

# bioformats2raw keeps its OME-XML in an "OME/" folder beside the series;
# zarr warns about it on every listing of the root, and it is expected there
warnings.filterwarnings(
    "ignore", message=r"Object at OME/? is not recognized as a component"
)


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


def _outermost_codec(meta: dict) -> str | None:
    """Name of the codec whose output is the bytes stored on disk: the last
    codec of a zarr v3 chain, the compressor of a v2 array (its filters run
    before it) or its last filter if it has no compressor, or None when
    chunks are stored raw."""
    if "codecs" in meta:
        codecs = list(meta["codecs"] or [])
        return str(codecs[-1].get("name")) if codecs else None
    compressors = meta.get("compressors") or meta.get("compressor")
    if isinstance(compressors, dict):
        compressors = [compressors]
    chain = list(meta.get("filters") or []) + list(compressors or [])
    if chain:  # filters run first, then the compressor
        return str(chain[-1].get("id") or chain[-1].get("name"))
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

    def __init__(
        self,
        path: str,
        limits: Limits | None = None,
        fields: range | None = None,
        remote: RemoteStore | None = None,
    ) -> None:
        import zarr

        from biocodes.sources.zarr_store import open_store

        super().__init__(path)
        limits = limits or Limits()
        try:
            self._store = open_store(path, limits, remote)
            root = zarr.open_group(store=self._store, mode="r")
            label = url_name(path) or Path(path).name
            images = self._plate(root, label, fields) or self._find_images(root, label)
        except (UnreadableError, UnsupportedError):
            raise
        except Exception as exc:
            raise UnreadableError(path, f"not a readable OME-Zarr ({exc})") from None
        if not images:
            raise UnsupportedError(path, "zarr store holds no OME-NGFF multiscales")
        #: (array, axis names) per scene; None for a plate's failed field
        self._arrays: list[tuple[Any, str] | None] = []
        for index, (name, group, ms) in enumerate(images):
            if fields is not None and index not in fields:
                self._arrays.append(None)  # another task's field
                continue
            try:
                if index in self.scene_failures:
                    raise self.scene_failures[index]["error"]
                self._add_image(path, index, name, group, ms)
            except BiocodeError as exc:
                if not self.independent_scenes:
                    raise
                # a plate's field fails alone: its scene's error, not the plate's
                self.scene_failures[index] = {"scene_name": name, "error": exc}
                self._arrays.append(None)

    #: a plate's fields are independent images: one failing is that scene's
    #: error (see :func:`biocodes.core.fingerprint.biocode`), not the plate's
    independent_scenes = False

    def _plate(
        self,
        root,  # noqa: ANN001
        label: str,
        only: range | None = None,
    ) -> list[tuple[str, Any, dict]]:
        """The fields of an HCS plate (or of one well) as images, with their
        plate, well, field and acquisition in :attr:`scene_meta`; [] if the
        store is not a plate. With ``only``, just those fields (by scene
        index) are opened and become scenes: a part of a large plate."""
        from biocodes.sources.plate import open_fields, plate_fields, well_fields

        #: per scene index: plate, well, field, acquisition (plates only)
        self.scene_meta: dict[int, dict] = {}
        #: per scene index: scene_name and error of a field that cannot be read
        self.scene_failures: dict[int, dict] = {}
        attrs = _ome_attrs(root)
        if "plate" in attrs:
            fields = plate_fields(root, label)
        elif "well" in attrs and "multiscales" not in attrs:
            fields = well_fields(root, "", {"plate": None, "well": None})
        else:
            return []
        self.independent_scenes = True
        self.format = "ome-zarr-plate"
        open_fields(fields, root, only)
        self.field_count = len(fields)
        images = []
        for index, f in enumerate(fields):
            if only is not None and index not in only:
                images.append((f.path, None, {}))
                continue
            self.scene_meta[index] = f.meta
            if f.error is not None:
                error = UnreadableError(self.path, f.error)
                self.scene_failures[index] = {"scene_name": f.path, "error": error}
            images.append((f.path, f.group, f.multiscales or {}))
        if not images:
            raise EmptyImageError(self.path, "the plate lists no fields")
        return images

    def _add_image(
        self, path: str, index: int, name: str, group: Any, ms: dict
    ) -> None:
        """Scene ``index``: the full-resolution array of one multiscales image."""
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
        scene = make_scene(path, index, name, sizes, array.dtype)
        meta = safely(
            path, lambda: metadata.ngff(ms, _ome_attrs(group).get("omero")), {}
        )
        self._scenes.append(replace(scene, metadata=meta))
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
        return []

    def decoding(self, scene: SceneInfo) -> dict:
        """Every codec of the scene's full-resolution array (bytes and
        sharding included)."""
        array, _ = self._arrays[scene.index]
        meta = array.metadata.to_dict()
        names = _codec_names(
            [meta.get(k) for k in ("codecs", "filters", "compressor", "compressors")]
        )
        tools = f"{package_version('zarr')}, {package_version('numcodecs')}"
        return decoding(names, tools)

    def _read_pixels(self, scene: SceneInfo, z: int, c: int, t: int) -> np.ndarray:
        array, axes = self._arrays[scene.index]  # type: ignore[misc]
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
