"""OME-Zarr (NGFF 0.4 on zarr v2, 0.5 on zarr v3) and bioformats2raw trees,
on local disk or remote (``s3://``, ``http(s)://``, see :mod:`biocodes.infra.remote`).

Planes are zarr slices of the full-resolution level, so a read touches only
the chunks of that plane. Scenes are the multiscales images of the store; a
bioformats2raw root holds one image per series, in the order its ``OME``
group's ``series`` lists them (numeric order of the numbered groups when it
lists none). A zipped store (``.ozx``) is read the same way.
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


#: NGFF axis types by the names the spec uses for them, for axes that give
#: no ``type`` (NGFF 0.3 lists names only)
_TYPE_BY_NAME = {
    "t": "time",
    "time": "time",
    "c": "channel",
    "channel": "channel",
    "z": "space",
    "y": "space",
    "x": "space",
}


def is_zipped_zarr(path: str) -> bool:
    """Whether a file is a zipped zarr store (an ``.ozx`` OME-Zarr): a zip
    archive with zarr metadata at its root."""
    import zipfile

    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return False
    try:
        with zipfile.ZipFile(path) as z:
            return any(n in ZARR_ROOT_META for n in z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


#: metadata files at the root of a zarr v3 or v2 group
ZARR_ROOT_META = ("zarr.json", ".zgroup", ".zattrs")


def _axis_names(path: str, image: str, axes: list, ndim: int) -> str:
    """One letter per array dimension (T, C, Z, Y, X; ``?`` for a custom
    axis) from the NGFF axes, identified by their ``type`` (time, channel,
    space) as the spec says, not by the first letter of their name: the
    last two space axes are Y and X, a third one before them is Z. An axis
    without a type takes it from its name (t, c, z, y, x). A duplicate name,
    a second time or channel axis, or more than three space axes is
    refused, naming the axis."""
    if not axes:  # NGFF 0.1/0.2 had no axes: always TCZYX
        return "TCZYX"[-ndim:] if ndim <= 5 else "?" * ndim
    names, types = [], []
    for a in axes:
        name = str(a.get("name") if isinstance(a, dict) else a)
        kind = a.get("type") if isinstance(a, dict) else None
        names.append(name)
        types.append(str(kind).lower() if kind else _TYPE_BY_NAME.get(name.lower()))
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise UnsupportedError(path, f"image {image!r} names axis {name!r} twice")
    letters = []
    space = [i for i, t in enumerate(types) if t == "space"]
    if len(space) > 3:
        raise UnsupportedError(
            path,
            f"image {image!r} has {len(space)} space axes "
            f"({', '.join(repr(names[i]) for i in space)}); at most 3 are read",
        )
    role = dict(zip(space, "ZYX"[3 - len(space) :]))
    for i, kind in enumerate(types):
        if kind == "time":
            letters.append("T")
        elif kind == "channel":
            letters.append("C")
        elif kind == "space":
            letters.append(role[i])
        else:
            letters.append("?")
    for letter, kind in (("T", "time"), ("C", "channel")):
        found = [names[i] for i, x in enumerate(letters) if x == letter]
        if len(found) > 1:
            raise UnsupportedError(
                path,
                f"image {image!r} has more than one {kind} axis "
                f"({', '.join(map(repr, found))})",
            )
    return "".join(letters)


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

    A chunk absent from the store reads as the fill value and is counted
    (``chunks_absent``), unless ``limits.missing_chunks`` is "error"; see
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
        declared = ms.get("axes", [])
        axes = _axis_names(path, name, declared, array.ndim)
        if len(axes) != array.ndim or "Y" not in axes or "X" not in axes:
            raise UnsupportedError(
                path,
                f"image {name!r} declares axes {_declared(declared) or axes!r} "
                f"for an array of {array.ndim} dimensions (2 or 3 space axes needed)",
            )
        self._store.register(array, _check_codecs(path, name, array))
        for i, (a, n) in enumerate(zip(axes, array.shape)):
            if a == "?" and n != 1:
                axis = declared[i]
                label = axis.get("name") if isinstance(axis, dict) else axis
                kind = axis.get("type") if isinstance(axis, dict) else None
                raise UnsupportedError(
                    path,
                    f"image {name!r} has a custom axis {label!r}"
                    + (f" of type {kind!r}" if kind else " without a type")
                    + f" of size {n} (only time, channel and space axes are read)",
                )
        sizes = {a: n for a, n in zip(axes, array.shape) if a != "?"}
        scene = make_scene(path, index, name, sizes, array.dtype)
        meta = safely(
            path, lambda: metadata.ngff(ms, _ome_attrs(group).get("omero")), {}
        )
        self._scenes.append(replace(scene, metadata=meta))
        self._arrays.append((array, axes))

    def _find_images(self, root, name: str) -> list[tuple[str, object, dict]]:  # noqa: ANN001
        attrs = _ome_attrs(root)
        if "multiscales" in attrs:
            return [
                (ms.get("name") or name or f"Image:{i}", root, ms)
                for i, ms in enumerate(attrs["multiscales"])
            ]
        if "bioformats2raw.layout" in attrs or any(k.isdigit() for k in root):
            series, listed = _series(self.path, root)
            images = []
            for key in series:
                ms_list = _ome_attrs(root[key]).get("multiscales", [])
                if listed and not ms_list:  # a listed scene is never dropped
                    raise UnreadableError(
                        self.path,
                        f"the OME group lists series {key!r}, which holds no "
                        "multiscales image",
                    )
                if ms_list:
                    ms = ms_list[0]
                    images.append((ms.get("name") or f"Image:{key}", root[key], ms))
            return images
        return []

    def close(self) -> None:
        """Close a zipped store's archive (directory and remote stores hold
        no handle between reads)."""
        from zarr.storage import ZipStore

        inner = getattr(getattr(self, "_store", None), "_store", None)
        if isinstance(inner, ZipStore):
            inner.close()

    def finish_scene(self, scene: SceneInfo) -> dict:
        """``chunks_absent``: the chunks of the scene's array that the store
        does not hold (read as the fill value). A scene none of whose chunks
        is stored is an error: its code would be one of fill values."""
        array, _ = self._arrays[scene.index]  # type: ignore[misc]
        reads = self._store.absent(array)
        if reads is None:
            return {}
        if reads.total and reads.absent >= reads.total:
            raise UnreadableError(
                self.path,
                f"all {reads.total} chunks of image {scene.name!r} are missing "
                f"from the store (array {array.store_path.path!r}); likely a chunk-key "
                "separator other than the one its metadata declares ('/' vs "
                "'.', ome-zarr-py#343), or its chunks were not copied",
            )
        return {"chunks_absent": reads.absent}

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


def _declared(axes: list) -> str:
    """The declared axis names, for a message."""
    return ",".join(str(a.get("name") if isinstance(a, dict) else a) for a in axes)


def _series(path: str, root) -> tuple[list[str], bool]:  # noqa: ANN001
    """The image groups of a bioformats2raw tree, in scene order, and whether
    the tree lists them: the ``series`` list of its ``OME`` group, as the
    bioformats2raw layout says (names need not be numbers), else the
    numbered groups in numeric order."""
    listed = None
    if "OME" in root:
        listed = _ome_attrs(root["OME"]).get("series")
    if listed is None:
        return sorted((k for k in root.group_keys() if k.isdigit()), key=int), False
    if not isinstance(listed, list) or not all(isinstance(k, str) for k in listed):
        raise UnreadableError(
            path, f"the OME group's series is not a list of names: {listed!r}"
        )
    missing = [k for k in listed if k not in root]
    if missing:
        raise UnreadableError(
            path, f"the OME group lists series {missing[0]!r}, not in the store"
        )
    return list(listed), True
