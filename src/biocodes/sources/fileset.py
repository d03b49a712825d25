"""Filesets: images whose pixels live in several files.

A multi-file OME-TIFF lists, in its OME-XML, which TIFF file (``TiffData`` →
``UUID FileName``) and which page (``IFD``) holds each plane. The XML is in
every file, in only some of them, or in a separate ``*.companion.ome`` that
the TIFFs point to with ``<BinaryOnly MetadataFile=...>``. Whichever member a
user opens, the image is the whole set: :func:`resolve` finds its entry (the
companion, else the first member holding the full XML) and all its members,
and :class:`FilesetSource` reads each plane from the page that holds it.
Reading one part's own pages as if they were the image would give a code of
part of the planes; that never happens.

Members are ordered like ``iscc-sum --tree`` orders a directory (TREEWALK:
files before subdirectories, names by NFC UTF-8 bytes) by their paths
relative to the directory that holds them all; the raw-file ISCC-SUM of a
fileset is over the members' bytes in that order.
"""

from __future__ import annotations

import os
import stat
import struct
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from biocodes.infra.errors import (
    BiocodeError,
    TruncatedError,
    UnreadableError,
    UnsupportedError,
    display_path,
)
from biocodes.infra.location import Location
from biocodes.sources.base import PlaneSource, SceneInfo, make_scene

#: OME-XML metadata files (Bio-Formats' companion naming, and plain OME-XML)
OME_XML_SUFFIXES = (".companion.ome", ".ome", ".ome.xml")
#: the largest ImageDescription read when looking for OME-XML (plates' XML
#: can be tens of MB; larger is refused, not truncated)
MAX_XML_BYTES = 256 << 20

_TYPES = {
    "int8": "i1",
    "int16": "i2",
    "int32": "i4",
    "uint8": "u1",
    "uint16": "u2",
    "uint32": "u4",
    "float": "f4",
    "double": "f8",
}


def _regular(path: str) -> bool:
    """Whether ``path`` is a regular file (a FIFO would block an open)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def is_candidate(path: str | os.PathLike) -> bool:
    """Whether a file may belong to a fileset: an OME-XML file by its name,
    or a TIFF by its first bytes (whatever its name, as the readers choose)."""
    name = os.fspath(path).lower()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False  # a FIFO would block the open forever
    except OSError:
        return False
    if name.endswith(OME_XML_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
    except OSError:
        return False


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def tiff_description(path: str | os.PathLike) -> str | None:
    """The first page's ImageDescription (tag 270) of a TIFF, read with a
    few small reads; None if the file is not a TIFF or has none."""
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            return None
        bo = "<" if head[:2] == b"II" else ">"
        (magic,) = struct.unpack(bo + "H", head[2:4])
        if magic == 42:
            (ifd,) = struct.unpack(bo + "I", head[4:8])
            cfmt, efmt, esize, inline = "H", "HHII", 12, 4
        elif magic == 43 and len(head) >= 16:
            (ifd,) = struct.unpack(bo + "Q", head[8:16])
            cfmt, efmt, esize, inline = "Q", "HHQQ", 20, 8
        else:
            return None
        f.seek(ifd)
        raw = f.read(struct.calcsize(cfmt))
        if len(raw) < struct.calcsize(cfmt):
            return None
        (count,) = struct.unpack(bo + cfmt, raw)
        entries = f.read(min(count, 4096) * esize)
        for i in range(len(entries) // esize):
            tag, typ, n, value = struct.unpack(
                bo + efmt, entries[i * esize : (i + 1) * esize]
            )
            if tag != 270 or typ not in (1, 2, 7):
                continue
            if n > MAX_XML_BYTES:
                return None
            if n <= inline:
                data = entries[i * esize + esize - inline : i * esize + esize][:n]
            else:
                f.seek(value)
                data = f.read(n)
            return data.rstrip(b"\0").decode("utf-8", "replace")
    return None


def _ome_root(path: str, text: str | None) -> ET.Element | None:
    if not text or "<OME" not in text:
        return None
    try:
        root = ET.fromstring(text.strip().encode("utf-8"))
    except ET.ParseError as exc:
        raise UnreadableError(path, f"OME-XML is not well-formed ({exc})") from None
    return root if _local(root.tag) == "OME" else None


@dataclass(frozen=True)
class _TiffData:
    file: str  # absolute path of the TIFF holding these planes
    ifd: int
    first: tuple[int, int, int]  # (z, c, t)
    count: int | None  # None: every IFD of the file from ``ifd``


@dataclass(frozen=True)
class _Image:
    name: str
    sizes: dict
    dtype: str
    order: str  # DimensionOrder without XY, e.g. "ZCT"
    samples: int
    tiffdata: tuple[_TiffData, ...]


@dataclass(frozen=True)
class Fileset:
    """One image made of several files."""

    entry: str  # the file holding the metadata a reader starts from
    members: tuple[str, ...]  # every file, entry included, in TREEWALK order
    base: str  # the directory the members' relative paths start from
    images: tuple[_Image, ...] = field(default=(), repr=False)
    #: members that do not exist (the set cannot be read)
    missing: tuple[str, ...] = ()

    def relpath(self, member: str) -> str:
        return self.location.relpath(member)

    @property
    def location(self) -> Location:
        """Where the set's bytes are (named by its entry)."""
        return Location.fileset(self.entry, self.entry, self.members, self.base, self)

    def check_complete(self) -> None:
        """Raise the error that names the entry and the first missing member
        (looked up now: a member may have gone since the set was parsed)."""
        self.location.check_members()


def treewalk_key(rel: str) -> tuple:
    """Sort key of a relative POSIX path in TREEWALK order (iscc-sum's
    ``--tree``): files before subdirectories, each by NFC UTF-8 bytes."""
    parts = rel.split("/")

    def name(p: str) -> tuple[bytes, bytes]:
        return unicodedata.normalize("NFC", p).encode(), p.encode(
            "utf-8", "surrogateescape"
        )

    key = [(1, 0, *name(d)) for d in parts[:-1]]
    last = parts[-1]
    ignore = last.startswith(".") and last.endswith("ignore")
    key.append((0, 0 if ignore else 1, *name(last)))
    return tuple(key)


def _int(el: ET.Element, attr: str, default: int | None) -> int | None:
    value = el.get(attr)
    return default if value is None else int(value)


def _parse_images(path: str, root: ET.Element, holder: str | None) -> list[_Image]:
    """The Images of an OME document; ``holder`` is the TIFF the XML came
    from (TiffData without a UUID means that file), None for a companion."""
    folder = os.path.dirname(os.path.abspath(path))
    own = root.get("UUID")  # a TiffData with the file's own UUID means it,
    images = []  # whatever its FileName says (a renamed file)
    for index, img in enumerate(e for e in root if _local(e.tag) == "Image"):
        pixels = next((e for e in img if _local(e.tag) == "Pixels"), None)
        if pixels is None:
            raise UnreadableError(path, f"OME Image {index} has no Pixels")
        try:
            sizes = {a: int(pixels.get(f"Size{a}", "1")) for a in "XYZCT"}
            channels = [e for e in pixels if _local(e.tag) == "Channel"]
            spp = {int(c.get("SamplesPerPixel", "1")) for c in channels} or {1}
            tds = []
            for td in (e for e in pixels if _local(e.tag) == "TiffData"):
                uuid = next((e for e in td if _local(e.tag) == "UUID"), None)
                if holder is not None and (
                    uuid is None or (own and (uuid.text or "").strip() == own)
                ):
                    file = holder
                elif uuid is None:  # in a companion file: no file to mean
                    raise UnreadableError(
                        path, "a TiffData names no file (no UUID FileName)"
                    )
                else:
                    fname = uuid.get("FileName")
                    if not fname:
                        raise UnsupportedError(
                            path,
                            f"a TiffData names its file only by UUID {uuid.text} "
                            "(no FileName)",
                        )
                    file = os.path.normpath(os.path.join(folder, fname))
                ifd = _int(td, "IFD", 0)
                count = _int(td, "PlaneCount", None)
                if count is None and td.get("IFD") is not None:
                    count = 1
                first = tuple(_int(td, f"First{a}", 0) for a in "ZCT")
                tds.append(_TiffData(file, ifd, first, count))  # type: ignore[arg-type]
        except ValueError as exc:
            raise UnreadableError(path, f"OME-XML has a bad number ({exc})") from None
        if len(spp) != 1:
            raise UnsupportedError(path, "channels differ in samples per pixel")
        samples = spp.pop()
        if sizes["C"] % samples:
            raise UnreadableError(path, f"SizeC {sizes['C']} vs {samples} samples")
        sizes["C"] //= samples
        ptype = pixels.get("Type", "")
        if ptype not in _TYPES:
            raise UnsupportedError(path, f"OME pixel type {ptype!r} is not supported")
        order = pixels.get("DimensionOrder", "XYZCT")[2:]
        if sorted(order) != ["C", "T", "Z"]:
            raise UnreadableError(path, f"bad DimensionOrder {order!r}")
        if not tds and holder is not None:
            tds.append(_TiffData(holder, 0, (0, 0, 0), None))
        images.append(
            _Image(
                img.get("Name") or f"Image:{index}",
                sizes,
                _TYPES[ptype],
                order,
                samples,
                tuple(tds),
            )
        )
    return images


def _stat_key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None  # a directory, device or FIFO: never a fileset member
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def resolve(path: str | os.PathLike) -> Fileset | None:
    """The fileset ``path`` belongs to, or None for a file that is an image
    on its own. Raises a one-line error for metadata that cannot be used."""
    path = os.path.abspath(os.fspath(path))
    key = _stat_key(path)
    if key is None or not is_candidate(path):
        return None  # missing (the open says why), or not TIFF or OME-XML
    return _resolve(key)


@lru_cache(maxsize=256)
def _resolve(key: tuple[str, int, int]) -> Fileset | None:
    path = key[0]
    if path.lower().endswith(OME_XML_SUFFIXES):
        return _from_xml_file(path)
    try:
        text = tiff_description(path)
    except OSError:
        return None  # the open says why
    if not text or "<OME" not in text:
        return None
    if "BinaryOnly" not in text and "FileName" not in text:
        return None  # a self-contained OME-TIFF
    try:
        root = _ome_root(path, text)
    except UnreadableError:
        return None  # XML that is not well-formed: its pages, as Bio-Formats
    if root is None:
        return None
    binary = next((e for e in root if _local(e.tag) == "BinaryOnly"), None)
    if binary is not None:
        meta = binary.get("MetadataFile")
        if not meta:
            raise UnreadableError(
                path, "OME-TIFF is BinaryOnly but names no MetadataFile"
            )
        entry = os.path.normpath(os.path.join(os.path.dirname(path), meta))
        if not _regular(entry):  # missing (or not a file): named by the open
            return Fileset(entry, (entry, path), os.path.dirname(path), (), (entry,))
        if not entry.lower().endswith(OME_XML_SUFFIXES):  # XML in a TIFF
            found = _resolve(_stat_key(entry) or (entry, 0, 0))
            if found is None or path not in found.members:
                raise UnreadableError(
                    path,
                    f"BinaryOnly part: its MetadataFile {display_path(meta)} does "
                    "not list this file; open the fileset's entry instead",
                )
            return found
        found = _from_xml_file(entry)
        if path not in found.members:
            raise UnreadableError(
                path,
                f"BinaryOnly part: its MetadataFile {display_path(meta)} does not "
                "list this file, so its planes belong to no image",
            )
        return found
    images = _parse_images(path, root, path)
    files = {td.file for im in images for td in im.tiffdata}
    if files <= {path}:
        return None
    return _make(path, images, files | {path}, xml_in_tiffs=True)


def _from_xml_file(path: str) -> Fileset:
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_XML_BYTES + 1).decode("utf-8", "replace")
    except OSError as exc:
        raise UnreadableError(path, f"cannot read: {exc.strerror}") from None
    root = _ome_root(path, text)
    if root is None:
        raise UnsupportedError(path, "not an OME-XML metadata file")
    images = _parse_images(path, root, None)
    if not images:
        raise UnsupportedError(path, "OME-XML metadata file holds no images")
    files = {td.file for im in images for td in im.tiffdata}
    return _make(path, images, files | {path}, xml_in_tiffs=False)


def _make(
    entry: str, images: list[_Image], files: set[str], xml_in_tiffs: bool
) -> Fileset:
    base = os.path.commonpath([os.path.dirname(f) for f in files])
    order = sorted(
        files,
        key=lambda f: treewalk_key(Path(os.path.relpath(f, base)).as_posix()),
    )
    missing = tuple(f for f in order if not os.path.exists(f))
    if xml_in_tiffs:
        # the same set is found from any member holding its XML: its entry is
        # the first of them, so every member names the same entry
        for f in order:
            if f == entry:
                break
            try:
                text = tiff_description(f) if _regular(f) else None
            except OSError:
                continue
            if text and "<OME" in text and "BinaryOnly" not in text:
                entry = f
                break
    return Fileset(entry, tuple(order), base, tuple(images), missing)


class FilesetSource(PlaneSource):
    """The planes of a multi-file OME-TIFF, each read from the page of the
    member that holds it (and checked against that member's size)."""

    format = "ome-tiff-fileset"

    def __init__(self, path: str, fileset: Fileset) -> None:
        super().__init__(path)
        fileset.check_complete()
        self.fileset = fileset
        self._tiffs: dict[str, object] = {}
        #: per scene: (z, c, t) -> (file, ifd)
        self._planes: list[dict[tuple[int, int, int], tuple[str, int]]] = []
        try:
            for index, image in enumerate(fileset.images):
                scene = make_scene(
                    fileset.entry,
                    index,
                    image.name,
                    {a: image.sizes[a] for a in "TCZYX"},
                    np.dtype(image.dtype),
                    image.samples,
                )
                self._scenes.append(scene)
                self._planes.append(self._map(index, image))
        except BaseException:
            self.close()
            raise

    def _where(self) -> str:
        if os.path.abspath(self.path) == self.fileset.entry:
            return ""
        return f" (fileset entry {display_path(self.fileset.entry)})"

    def _map(self, index: int, image: _Image) -> dict:
        """Which (file, IFD) holds each (z, c, t) of one image."""
        sizes = {"Z": image.sizes["Z"], "C": image.sizes["C"], "T": image.sizes["T"]}
        shape = tuple(sizes[a] for a in reversed(image.order))  # slowest first
        total = sizes["Z"] * sizes["C"] * sizes["T"]
        found: dict[tuple[int, int, int], tuple[str, int]] = {}
        for td in image.tiffdata:
            pos = dict(zip("ZCT", td.first))
            inside = all(pos[a] < sizes[a] for a in "ZCT")
            first = [pos[a] for a in reversed(image.order)]
            start = int(np.ravel_multi_index(first, shape)) if inside else total
            count = td.count
            if count is None:
                count = len(self._tiff(td.file).pages) - td.ifd
            for k in range(count):
                if start + k >= total:
                    break
                coords = np.unravel_index(start + k, shape)
                at = dict(zip(reversed(image.order), (int(v) for v in coords)))
                found.setdefault((at["Z"], at["C"], at["T"]), (td.file, td.ifd + k))
        if len(found) < total:
            raise UnreadableError(
                self.path,
                f"image {index}: {total - len(found)} of {total} planes are in "
                f"no file of the fileset{self._where()}",
            )
        return found

    def _tiff(self, file: str):
        tif = self._tiffs.get(file)
        if tif is None:
            import tifffile

            try:
                tif = tifffile.TiffFile(file, _multifile=False)
            except TypeError:
                tif = tifffile.TiffFile(file)
            except Exception as exc:
                raise UnreadableError(
                    self.path,
                    f"member {display_path(self.fileset.relpath(file))} is not a "
                    f"readable TIFF ({exc}){self._where()}",
                ) from None
            self._tiffs[file] = tif
        return tif

    def decoding(self, scene: SceneInfo) -> dict:
        """The compression of the pages that hold the scene's first and last
        planes (tifffile's names), as for a single OME-TIFF."""
        from biocodes.sources.base import decoding, package_version

        names = set()
        planes = self._planes[scene.index]
        for file, ifd in {planes[min(planes)], planes[max(planes)]}:
            try:
                names.add(self._tiff(file).pages[ifd].compression.name.lower())
            except Exception:  # the read says what is wrong with the page
                return decoding(None, package_version("tifffile"))
        tools = f"{package_version('tifffile')}, {package_version('imagecodecs')}"
        return decoding(sorted(names), tools)

    def _read_pixels(
        self, scene: SceneInfo, z: int, channel: int, t: int
    ) -> np.ndarray:
        from biocodes.sources.tiff import _OffsetWatch, decode_page

        file, ifd = self._planes[scene.index][(z, channel, t)]
        rel = display_path(self.fileset.relpath(file))
        tif = self._tiff(file)
        with _OffsetWatch() as watch:
            try:
                page = tif.pages[ifd]
            except Exception as exc:
                raise TruncatedError(
                    self.path,
                    f"member {rel} has no page {ifd} ({exc}){self._where()}",
                ) from None
        if page is None or watch.messages:
            raise TruncatedError(
                self.path, f"member {rel} page {ifd} is damaged{self._where()}"
            )
        size = tif.filehandle.size
        for offset, count in zip(page.dataoffsets, page.databytecounts):
            if count and offset + count > size:
                raise TruncatedError(
                    self.path,
                    f"member {rel} is truncated: page {ifd} needs bytes up to "
                    f"{offset + count}, the file has {size}{self._where()}",
                )
        data = decode_page(self.path, page, f"member {rel} page {ifd}")
        axes = page.axes
        if "S" in axes and axes.index("S") != len(axes) - 1:
            data = np.moveaxis(data, axes.index("S"), -1)
        if scene.samples == 1 and data.ndim == 3 and data.shape[-1] == 1:
            data = data[..., 0]
        return data

    def close(self) -> None:
        for tif in self._tiffs.values():
            tif.close()  # type: ignore[attr-defined]
        self._tiffs = {}


def bioformats_fileset(source: PlaneSource) -> Fileset | None:
    """The files Bio-Formats read for an image it opened (its reader's
    ``getUsedFiles``: a ``.ics`` with its ``.ids``, a ``.vsi`` with its
    ``.ets`` folder, ...), as a fileset whose entry is the reader's current
    file; None for one file, or for an image another reader opened."""
    img = getattr(source, "_img", None)
    reader = getattr(img, "reader", None)
    biofile = getattr(reader, "_bf", None)  # bioio-bioformats' BioFile
    if biofile is None:
        return None
    try:
        with biofile.ensure_open():
            java = biofile._java_reader
            used = [os.path.abspath(str(f)) for f in java.getUsedFiles()]
            entry = os.path.abspath(str(java.getCurrentFile()))
    except Exception as exc:
        raise UnreadableError(
            source.path, f"Bio-Formats cannot list the files it read ({exc})"
        ) from None
    if len(set(used)) < 2:
        return None
    files = set(used) | {entry}
    base = os.path.commonpath([os.path.dirname(f) for f in files])
    order = sorted(
        files, key=lambda f: treewalk_key(Path(os.path.relpath(f, base)).as_posix())
    )
    return Fileset(entry, tuple(order), base)


def member_state(fileset: Fileset) -> list[tuple[str, int, int]]:
    """(absolute path, size, mtime_ns) of every member, in member order;
    a missing member raises the error that names it."""
    return fileset.location.member_states()


__all__ = [
    "BiocodeError",
    "Fileset",
    "FilesetSource",
    "bioformats_fileset",
    "is_candidate",
    "member_state",
    "resolve",
    "tiff_description",
    "treewalk_key",
]
