"""The bad-input corpus: every way a repository's files go wrong, generated.

``make_corpus(root, outside)`` fills ``root`` with good images (some under odd
names) and broken ones, and ``outside`` with a file that a symlink in ``root``
points to. Each entry says what the scan and the read must say about it:
``kind`` is the ``error_type`` (None: a good image).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biocodes import synth

#: where a pickle payload in the corpus would leave its mark if it ever ran
PICKLE_MARK = "pickle-ran"


@dataclass(frozen=True)
class Case:
    name: str  # the file's name in the root, as the OS sees it
    kind: str | None  # error_type in the catalogue; None for a good image
    stage: str | None = None  # the errors row's stage, when it matters


def _scene(seed: int) -> np.ndarray:
    return synth.random_scene((1, 1, 3, 48, 40), "uint16", seed=seed)


def _truncate(path: Path, fraction: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _garble(path: Path, start: int, length: int = 64, seed: int = 7) -> None:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    data[start : start + length] = rng.integers(0, 256, length, np.uint8).tobytes()
    path.write_bytes(bytes(data))


def huge_tiff(path: Path, side: int = 1_000_000) -> Path:
    """A 200-byte TIFF whose one page declares side x side uint16 pixels."""
    tags = [
        (256, 4, 1, side),  # ImageWidth, LONG
        (257, 4, 1, side),  # ImageLength
        (258, 3, 1, 16),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: min-is-black
        (273, 4, 1, 8),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, side),  # RowsPerStrip
        (279, 4, 1, 0xFFFFFFFF),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(tags))
    for tag, typ, count, value in tags:
        if typ == 3:  # SHORT, left-justified in the 4-byte value field
            ifd += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    path.write_bytes(b"II*\0" + struct.pack("<I", 16) + b"\0" * 8 + ifd)
    return path


def huge_png(path: Path, side: int = 1_000_000) -> Path:
    """A PNG whose header declares side x side 16-bit gray pixels, with no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 64)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data)
    path.write_bytes(png + chunk(b"IEND", b""))
    return path


def huge_zarr(path: Path) -> Path:
    """An OME-Zarr (v3) whose array declares 1 x 1 x 10^4 x 10^6 x 10^6 uint16."""
    synth.write_ome_zarr(path, _scene(9)[:, :, :1], zarr_format=3, levels=1)
    meta = json.loads((path / "0" / "zarr.json").read_text())
    meta["shape"] = [1, 1, 10_000, 1_000_000, 1_000_000]
    (path / "0" / "zarr.json").write_text(json.dumps(meta))
    return path


def pickle_zarr(path: Path, mark: Path) -> Path:
    """A zarr v2 OME-Zarr whose array runs a pickle filter: decoding a chunk
    would write ``mark``. Reading it must be refused, not executed."""
    import pickle

    synth.write_ome_zarr(path, _scene(10)[:, :, :1], zarr_format=2, levels=1)
    zarray = json.loads((path / "0" / ".zarray").read_text())
    zarray["filters"] = [{"id": "pickle", "protocol": 5}]
    zarray["compressor"] = None
    (path / "0" / ".zarray").write_text(json.dumps(zarray))

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (mark, "executed"))

    for chunk in (path / "0").rglob("*"):
        if chunk.is_file() and not chunk.name.startswith("."):
            chunk.write_bytes(pickle.dumps(Payload()))
    return path


def zarr_missing_chunk(path: Path, every: bool = True) -> Path:
    """A store that lost its chunks (every one: no code of fill values, an
    error; or the last one only: read as the fill value)."""
    synth.write_ome_zarr(path, _scene(11), zarr_format=3, levels=1)
    chunks = sorted(
        p for p in (path / "0").rglob("*") if p.is_file() and p.name != "zarr.json"
    )
    for chunk in chunks if every else chunks[-1:]:
        chunk.unlink()
    return path


def zarr_garbled_chunk(path: Path) -> Path:
    synth.write_ome_zarr(path, _scene(12), zarr_format=3, levels=1)
    chunks = sorted(
        p for p in (path / "0").rglob("*") if p.is_file() and p.name != "zarr.json"
    )
    _garble(chunks[0], 0, 256)
    return path


#: good images under names that break naive code: spaces, quotes, a newline,
#: a byte that is not UTF-8, a leading dash
ODD_NAMES = [
    "with space.tif",
    'quote\'s "double".tif',
    "new\nline.tif",
    os.fsdecode(b"caf\xe9-latin1.tif"),
    "-leading-dash.tif",
]


def make_corpus(root: Path, outside: Path) -> list[Case]:
    """Write the corpus; return every entry with its expected outcome."""
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def good(name: str, writer, seed: int) -> None:
        writer(root / name, _scene(seed))
        cases.append(Case(name, None))

    good("good.ome.tif", synth.write_ome_tiff, 1)
    good("good.ome.zarr", lambda p, a: synth.write_ome_zarr(p, a, zarr_format=3), 2)
    good("good.czi", synth.write_czi, 3)
    synth.write_png(root / "good.png", _scene(4)[0, 0, 0])
    cases.append(Case("good.png", None))
    for i, name in enumerate(ODD_NAMES):
        synth.write_tiff(root / name, _scene(20 + i)[0, 0])
        cases.append(Case(name, None))

    def bad(name: str, kind: str, stage: str | None = None) -> Path:
        cases.append(Case(name, kind, stage))
        return root / name

    a = _scene(5)
    # truncated: every writable format
    _truncate(synth.write_ome_tiff(bad("trunc.ome.tif", "truncated"), a))
    _truncate(
        synth.write_ome_tiff(
            bad("trunc-zlib.ome.tif", "truncated"), a, compression="zlib"
        )
    )
    _truncate(synth.write_tiff(bad("trunc.tif", "truncated"), a[0, 0]), 0.9)
    _truncate(synth.write_png(bad("trunc.png", "truncated"), a[0, 0, 0]))
    _truncate(synth.write_czi(bad("trunc.czi", "unreadable"), a))
    # garbled: compressed data, headers, chunks
    path = synth.write_ome_tiff(
        bad("garbled-zlib.ome.tif", "unreadable"), a, compression="zlib"
    )
    _garble(path, 2000)
    path = synth.write_png(bad("garbled.png", "unreadable"), a[0, 0, 0])
    _garble(path, 200, 32)
    path = synth.write_czi(bad("garbled.czi", "unreadable"), a)
    _garble(path, 32, 200)
    zarr_missing_chunk(bad("missing-chunk.ome.zarr", "unreadable"))
    zarr_garbled_chunk(bad("garbled-chunk.ome.zarr", "unreadable"))
    garbled_meta = bad("garbled-meta.ome.zarr", "unreadable")
    synth.write_ome_zarr(garbled_meta, a, zarr_format=3, levels=1)
    (garbled_meta / "zarr.json").write_text("{ this is not json")
    # zero bytes, text and random bytes under image names
    bad("zero-bytes.ome.tif", "empty", "scan").touch()
    bad("notes.tif", "unreadable").write_text("this is not an image\n" * 50)
    rng = np.random.default_rng(3)
    for name in ("random.ome.tif", "random.png", "random.czi"):
        bad(name, "unreadable").write_bytes(
            rng.integers(0, 256, 4096, np.uint8).tobytes()
        )
    # zero-size dimension
    zero = bad("zero-size.ome.zarr", "empty")
    synth.write_ome_zarr(zero, a[:, :, :1], zarr_format=3, levels=1)
    meta = json.loads((zero / "0" / "zarr.json").read_text())
    meta["shape"][2] = 0
    (zero / "0" / "zarr.json").write_text(json.dumps(meta))
    # enormous declared dimensions: refused before any allocation
    huge_tiff(bad("huge.tif", "too_large", "open"))
    huge_zarr(bad("huge.ome.zarr", "too_large", "open"))
    huge_png(bad("huge.png", "too_large", "open"))
    # code in the repository: a pickle codec is refused, never run
    pickle_zarr(bad("pickle.ome.zarr", "unreadable"), outside / PICKLE_MARK)
    # symlinks: a loop, a dangling link, a link to outside the roots
    os.symlink("loop.tif", bad("loop.tif", "bad_symlink", "scan"))
    os.symlink("no-such-file.tif", bad("dangling.tif", "bad_symlink", "scan"))
    synth.write_tiff(outside / "elsewhere.tif", _scene(30)[0, 0])
    os.symlink(outside / "elsewhere.tif", bad("outside.tif", "outside_roots", "scan"))
    os.symlink(outside, bad("outside-dir", "outside_roots", "scan"))
    # a link inside the root is read like the file it names
    os.symlink("good.ome.tif", root / "link-to-good.ome.tif")
    cases.append(Case("link-to-good.ome.tif", None))
    # no read permission (needs a process without CAP_DAC_OVERRIDE when root)
    path = synth.write_tiff(bad("unreadable.tif", "unreadable", "open"), a[0, 0])
    path.chmod(0)
    # a FIFO under an image name must not block the read forever
    os.mkfifo(bad("fifo.tif", "unreadable", "open"))
    return cases
