"""Pixel types that a format's own header declares, checked against the
declaration of the reader that decodes it.

A foreign reader (Bio-Formats, a bioio plugin) declares a pixel type of its
own, and a wrong one gives a code of misread bytes: Bio-Formats 7.3.1 reads
MRC mode 12 (float16) as int8, mode 4 (complex float) as float64 and mode 3
(complex int16) as uint32. Where the file's header says what a pixel is, that
is the truth: a type IMAGEWALK has no encoding for (float16, complex) is
``unsupported`` whichever reader would open it, and a reader that declares
another type or plane size is an error, never a code.

A format joins by adding a parser to :data:`PARSERS`: it takes the file's
first :data:`HEAD` bytes and its size, and returns a :class:`Declared`, or
None when the bytes are not that format's header.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from biocodes.infra.errors import UnreadableError, UnsupportedError

#: bytes read from the start of the file for every parser
HEAD = 1024


@dataclass(frozen=True)
class Declared:
    """What a header says about every scene's pixels."""

    what: str  # e.g. "MRC mode 12 (float16)", for messages
    dtypes: frozenset[str] = frozenset()  # acceptable numpy dtype names
    unsupported: str | None = None  # why IMAGEWALK cannot hash it, if so
    size_x: int | None = None
    size_y: int | None = None
    planes: int | None = None  # Z·C·T, where the header says it


#: MRC modes (MRC2014, with IMOD's extensions): dtypes, or the reason refused.
#: Mode 0 is signed in MRC2014 and unsigned in older writers and Bio-Formats;
#: the stored bytes are the same, so either declaration is right
MRC_MODES: dict[int, tuple[str, ...] | str] = {
    0: ("int8", "uint8"),
    1: ("int16",),
    2: ("float32",),
    3: "complex int16 pixels, which IMAGEWALK does not define",
    4: "complex float32 pixels, which IMAGEWALK does not define",
    6: ("uint16",),
    12: "float16 pixels, which IMAGEWALK does not define",
    16: ("uint8",),  # IMOD: RGB, three uint8 samples
    101: "4-bit packed pixels, which IMAGEWALK does not define",
}
#: suffixes an MRC file goes by (Bio-Formats' MRC reader's list)
MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".st", ".ali", ".rec")


def _mrc_order(head: bytes) -> str | None:
    """'<' or '>' from the machine stamp at byte 212 (0x44: little endian,
    0x11: big), else from which order gives a known mode and sane sizes."""
    stamp = head[212]
    if stamp in (0x44, 0x41):
        return "<"
    if stamp == 0x11:
        return ">"
    for order in "<>":
        nx, ny, nz, mode = struct.unpack_from(order + "4i", head)
        if mode in MRC_MODES and 0 < nx < 2**20 and 0 < ny < 2**20 and nz > 0:
            return order
    return None


def mrc(head: bytes, size: int) -> Declared | None:
    """An MRC header: nx, ny, nz at bytes 0, 4, 8, the mode at 12, the byte
    order from the machine stamp; None when the bytes are not one."""
    if len(head) < HEAD:
        return None
    order = _mrc_order(head)
    if order is None:
        return None
    nx, ny, nz, mode = struct.unpack_from(order + "4i", head)
    if head[208:212] != b"MAP " and mode not in MRC_MODES:
        return None  # neither the MRC2000 tag nor a known mode: not an MRC
    what = f"MRC mode {mode}"
    found = MRC_MODES.get(mode)
    if found is None:
        return Declared(what, unsupported="a mode the MRC format does not define")
    if isinstance(found, str):
        return Declared(what, unsupported=found)
    planes = nz if mode != 16 else None
    return Declared(f"{what} ({found[-1]})", frozenset(found), None, nx, ny, planes)


#: (suffixes, parser) per format whose header declares its pixels
PARSERS: list[tuple[tuple[str, ...], Callable[[bytes, int], Declared | None]]] = [
    (MRC_SUFFIXES, mrc),
]


def declared(path: str) -> Declared | None:
    """What the header of the file at ``path`` declares, if its name and
    bytes are those of a format in :data:`PARSERS`."""
    name = path.lower()
    parsers = [p for suffixes, p in PARSERS if name.endswith(suffixes)]
    if not parsers or not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        head = f.read(HEAD)
    size = os.path.getsize(path)
    return next((d for p in parsers if (d := p(head, size)) is not None), None)


def check(
    path: str,
    found: Declared | None,
    index: int,
    reader: str,
    dtype: np.dtype,
    sizes: dict[str, int],
) -> None:
    """Refuse a scene whose reader's declaration disagrees with the header's
    (``found``): ``unsupported`` for pixels IMAGEWALK does not define, an
    error naming both declarations for a reader that would misread them."""
    if found is None:
        return
    if found.unsupported:
        raise UnsupportedError(path, f"{found.what}: {found.unsupported}")
    problems = []
    if np.dtype(dtype).name not in found.dtypes:
        problems.append(f"pixel type {np.dtype(dtype).name}")
    y, x = sizes.get("Y", 1), sizes.get("X", 1)
    if found.size_x is not None and (x, y) != (found.size_x, found.size_y):
        problems.append(f"planes of {x}x{y}, not {found.size_x}x{found.size_y}")
    planes = sizes.get("Z", 1) * sizes.get("C", 1) * sizes.get("T", 1)
    if found.planes is not None and planes != found.planes:
        problems.append(f"{planes} planes, not {found.planes}")
    if problems:
        says = [found.what]
        if found.size_x is not None:
            says.append(f"{found.size_x}x{found.size_y}")
        if found.planes is not None:
            says.append(f"{found.planes} planes")
        raise UnreadableError(
            path,
            f"scene {index}: {reader} declares {', '.join(problems)}, but the "
            f"header says {', '.join(says)}; its bytes would be misread",
        )
