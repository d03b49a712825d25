"""Any format an installed bioio plugin reads (CZI, PNG, DV, ND2, LIF, ...).

This is the fallback access path. The reader is chosen here, not by bioio:
the native plugins that claim the file's extension, in bioio's order, and
Bio-Formats (see :mod:`biocodes.sources.bioformats`) only when none does, or when
asked for. bioio would also try Bio-Formats after a native reader failed,
and a file a native reader refuses as damaged must stay an error.

Each plane is one small dask selection of the reader's lazy array, computed
on its own, so memory stays at a plane (or at the reader's chunk, for readers
whose chunks are larger).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import replace

import numpy as np

from biocodes.infra.errors import UnreadableError, UnsupportedError
from biocodes.sources import declared, metadata
from biocodes.sources.base import (
    PlaneSource,
    SceneInfo,
    decoding,
    make_scene,
    package_version,
)
from biocodes.sources.metadata import safely

#: readers are constructed with per-plane chunks where they accept it
PLANE_CHUNKS = ["Y", "X", "S"]
#: the value of ``reader`` that asks for Bio-Formats
BIOFORMATS = "bioformats"
#: plugins that return rows as stored, bottom-up: DeltaVision (like MRC) puts
#: the origin at the lower left. Bio-Formats, and so OMERO, Fiji, bfconvert
#: and bioformats2raw, turn them top-down; we do too, so a DV file and its
#: conversions get the same code (docs/reading.md, "Bio-Formats")
ROWS_BOTTOM_UP = frozenset({"dv"})
#: plugins that return colour samples as stored, B, G, R: bioio-czi (both of
#: its readers) for Bgr24/Bgr48 pixels. Bio-Formats and our CZI adapter walk
#: them R, G, B (README, "Bio-Formats"); a mosaic read here must give the code
#: the same file has as single tiles
SAMPLES_BGR = frozenset({"czi"})


#: formats Bio-Formats reads even where a native plugin claims them, from
#: evidence on real files (docs/reading.md, "Which reader"). LIF: bioio-lif
#: 2.0.1 fails on every real LAS X sample we have (XZ scans, wavelength
#: sweeps) and reports no wavelength axis; Bio-Formats reads each stored
#: frame once, as readlif and liffile do. VSI: a TIFF holding the macro image,
#: the pixels in side .ets files; bioio-vsi 0.1.0 drops the macro image. No
#: fallback to a plugin: a code must not depend on whether Java is there
BIOFORMATS_CANONICAL = (".lif", ".vsi")

#: the suffix that stands for a container recognised by its first bytes
CONTENT_SUFFIX = {"tiff": ".tif", "czi": ".czi"}


def choose_readers(
    path: str, reader: str | None = None, content: str | None = None
) -> list[type]:
    """The bioio reader classes to try for ``path``, in order.

    The candidates are the readers whose own suffix lists claim the name
    (bioio's plugin registry; for Bio-Formats its jar's full list, see
    :data:`biocodes.sources.bioformats.SUFFIXES`), or, for a file whose first bytes
    name its container (``content``), the readers of that container.
    Bio-Formats comes only when no native reader claims the file, or for
    the formats in :data:`BIOFORMATS_CANONICAL`."""
    from bioio.plugins import get_plugins

    from biocodes.sources import bioformats

    names = [path.lower()] + ([CONTENT_SUFFIX[content]] if content else [])
    native = []
    for ext, entries in get_plugins(use_cache=True).items():  # longest first
        if not any(n.endswith(ext) for n in names):
            continue
        for entry in entries:
            if entry.entrypoint.name != bioformats.PLUGIN and entry not in native:
                native.append(entry)
    claimed = any(bioformats.claims(n) for n in names)
    if any(n.endswith(BIOFORMATS_CANONICAL) for n in names):
        native = []
    if reader == BIOFORMATS or (not native and claimed):
        bioformats.configure(path)
        import bioio_bioformats

        return [bioio_bioformats.Reader]
    if reader not in (None, "auto"):
        raise UnsupportedError(path, f"unknown reader {reader!r}")
    if not native:
        raise UnsupportedError(
            path,
            "not an image format biocodes reads (no installed reader claims "
            f"this file type; {FORMATS_HELP})",
        )
    return [entry.metadata.get_reader() for entry in native]


#: a reader that refused a file without a word
NO_REASON = "refused it, giving no reason"
#: where a user finds the formats biocodes reads
FORMATS_HELP = "the formats are listed in docs/reading.md"


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: the path bioio names the file by (absolute, whatever the caller gave)
_QUOTED_PATH = re.compile(r"^'[^']*'\.")
#: a Python object's repr (``<fsspec... object at 0x7f...>``): no use to a user
_OBJECT_REPR = re.compile(r"`*<[^<>]*\bat 0x[0-9a-fA-F]+>`*")


def reader_failures(
    exc: BaseException, path: str, readers: list, limit: int = 300
) -> str:
    """Why each reader bioio tried (``readers``, in order) refused ``path``,
    one clause per reader ("bioio-dv: DV file format not supported; ..."),
    without bioio's boilerplate, the repeated path or object addresses."""
    text = " ".join(str(exc).split())
    tried = text.split(" - Reader: ")[1:]
    if not tried:
        return _one_line(exc, limit)
    # the readers' own names where bioio says only "Reader"
    names = [r.__module__.split(".")[0].replace("_", "-") for r in readers]
    clauses = []
    for i, attempt in enumerate(tried):
        name, _, why = attempt.partition(" does not support the image: ")
        if len(names) == len(tried):
            name = names[i]
        why = _QUOTED_PATH.sub("", why, count=1).strip()  # bioio's own path
        why = _OBJECT_REPR.sub("the file", why).rstrip(".")
        clauses.append(f"{name.strip()}: {why or NO_REASON}")
    return _one_line(Exception("; ".join(clauses)), limit)


class BioioSource(PlaneSource):
    """An image opened through bioio's plugin system.

    Plugin discovery (entry points and their metadata) is cached per process:
    uncached it cost ~55 ms per image, most of a tiny image's time."""

    def __init__(
        self, path: str, reader: str | None = None, content: str | None = None
    ) -> None:
        import bioio

        super().__init__(path)
        readers = choose_readers(path, reader, content)
        # bioio hands every keyword to every reader, and takes a TypeError as
        # "cannot read this file"; plane chunks only where all accept them
        plane_chunks = all(
            "chunk_dims" in inspect.signature(r.__init__).parameters for r in readers
        )
        kwargs = {"chunk_dims": PLANE_CHUNKS} if plane_chunks else {}
        try:
            self._img = bioio.BioImage(path, readers, use_plugin_cache=True, **kwargs)
        except Exception as exc:
            why = reader_failures(exc, path, readers)
            if all(c.endswith(NO_REASON) for c in why.split("; ")):
                # no reader saw anything it knew: most often not an image
                # (a README.txt Bio-Formats claims by its suffix), else damaged
                raise UnreadableError(
                    path,
                    "not an image format biocodes reads, or a damaged file "
                    f"({why}; {FORMATS_HELP})",
                ) from None
            raise UnreadableError(
                path, f"no installed reader can open it ({why})"
            ) from None
        reader = self._img.reader
        self.format = type(reader).__module__.split(".")[0].replace("bioio_", "")
        # what the file's own header says its pixels are, where it says so
        self._declared = declared.declared(path)
        self._scenes = [self._scene(i, name) for i, name in enumerate(reader.scenes)]

    def _scene(self, index: int, name: str) -> SceneInfo:
        try:
            self._img.set_scene(index)
            dims = self._img.dims
            order, shape = dims.order, dims.shape
            dtype = self._img.dtype
            # BioImage shows every reader as TCZYX(S) and keeps index 0 of any
            # other axis without a word: check the reader's own dims too
            stored = self._img.reader.dims
        except Exception as exc:
            raise UnreadableError(
                self.path, f"cannot read scene {index}: {_one_line(exc)}"
            ) from None
        sizes = dict(zip(order, shape))
        known = "TCZYXS" + ("" if "M" in order else "M")  # M: tiles it stitched
        for axis, n in [*zip(stored.order, stored.shape), *sizes.items()]:
            if axis not in known and n != 1:
                raise UnsupportedError(
                    self.path,
                    f"scene {index} has a dimension {axis!r} of size {n}, which "
                    "IMAGEWALK does not define",
                )
        declared.check(self.path, self._declared, index, self.format, dtype, sizes)
        scene = make_scene(self.path, index, name, sizes, dtype, sizes.get("S", 1))
        meta = safely(self.path, lambda: metadata.bioio_scene(self._img), {})
        return replace(scene, metadata=metadata.expand_channels(meta, scene.samples))

    def decoding(self, scene: SceneInfo) -> dict:
        """The plugin (and Bio-Formats' jar) that decoded; bioio does not say
        which codec the file uses."""
        tools = package_version(f"bioio-{self.format.replace('_', '-')}")
        if self.format == "bioformats":
            from biocodes.sources.bioformats import BIOFORMATS_VERSION

            tools = f"Bio-Formats {BIOFORMATS_VERSION} ({tools})"
        return decoding(None, tools)

    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        """One YX plane, or YXS with all samples: selecting S in the dask call
        returned the first sample for every S in bioio-czi, so we never do."""
        img = self._img
        try:
            if img.current_scene_index != scene.index:
                img.set_scene(scene.index)
            order = img.dims.order
            select = {
                k: v for k, v in {"Z": z, "C": channel, "T": t}.items() if k in order
            }
            for axis in order:  # singleton extra axes, checked in _scene
                if axis not in "TCZYXS":
                    select[axis] = 0
            wanted = "YXS" if "S" in order else "YX"
            # synchronous: inside a dask worker compute() would ship the graph
            # (Bio-Formats: Java objects, which cannot be pickled) to the cluster
            data = img.get_image_dask_data(wanted, **select).compute(
                scheduler="synchronous"
            )
        except Exception as exc:
            raise UnreadableError(
                self.path,
                f"cannot read scene {scene.index} plane z={z} c={channel} t={t}: "
                f"{_one_line(exc)}",
            ) from None
        data = np.asarray(data)  # bffile hands back a lazy array
        if data.ndim == 3 and scene.samples == 1:
            data = data[..., 0]
        if self.format in ROWS_BOTTOM_UP:
            data = data[::-1]
        if self.format in SAMPLES_BGR and data.ndim == 3 and data.shape[-1] == 3:
            data = data[..., ::-1]
        return data
