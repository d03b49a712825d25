"""ISCC-SUM codes: per scene over IMAGEWALK bytes, per plane simprints, per file.

All hashing goes through iscc-lib's streaming hashers: they give the same
codes as iscc-sum's processors, run ~15% faster and release the GIL while
hashing, so the next plane can be read and decoded on another core meanwhile.
Codes are wide ISCC-SUMs whose units are the 256-bit Data-Code and
Instance-Code, the same as iscc-bio 0.2.0 produces.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterable
from concurrent.futures import CancelledError

import xxhash
from iscc_lib import DataHasher, SumHasher, iscc_decode

from biocodes.infra.errors import EmptyImageError, UnreadableError
from biocodes.infra.limits import Limits
from biocodes.infra.location import Location

READ_BYTES = 2 << 20  # same read size as the iscc-sum tool
BITS = 256  # wide ISCC-SUM: 256-bit Data-Code and Instance-Code units


def sum_result(hasher: SumHasher) -> dict:
    r = hasher.finalize(BITS, wide=True, add_units=True)
    return {
        "iscc_code": r["iscc"],
        "units": list(r["units"]),
        "datahash": r["datahash"],
        "filesize": r["filesize"],
    }


#: bytes per plane digest (xxh3-64, big-endian as ``digest()`` gives it)
DIGEST_BYTES = 8


class SceneHasher:
    """ISCC-SUM over one scene's canonical bytes, optional plane simprints,
    and a short exact digest per plane (xxh3-64, on by default): the digests
    say *which* planes differ when a scene's code changes, without the old
    pixels. xxh3 runs at several GB/s and releases the GIL, so it adds a few
    percent to the ISCC-SUM (see docs/performance.md)."""

    def __init__(self, simprints: bool = False, plane_digests: bool = True) -> None:
        self._sum = SumHasher()
        self._simprints: list[dict] | None = [] if simprints else None
        self._digests: list[bytes] | None = [] if plane_digests else None

    def add_plane(self, chunks: Iterable[bytes]) -> None:
        """Feed one plane, given as its canonical byte chunks."""
        digest = xxhash.xxh3_64() if self._digests is not None else None
        if self._simprints is None:
            for chunk in chunks:
                self._sum.update(chunk)
                if digest is not None:
                    digest.update(chunk)
            if digest is not None:
                self._digests.append(digest.digest())
            return
        plane = DataHasher()
        size = 0
        for chunk in chunks:
            self._sum.update(chunk)
            plane.update(chunk)
            if digest is not None:
                digest.update(chunk)
            size += len(chunk)
        if digest is not None:
            self._digests.append(digest.digest())
        body = iscc_decode(plane.finalize(BITS)["iscc"])[4]  # 256-bit body
        self._simprints.append(
            {
                "simprint": base64.b64encode(body).decode("ascii"),
                "offset": len(self._simprints),
                "size": size,
            }
        )

    def result(self) -> dict:
        """``iscc_code`` and ``units`` (+ ``simprints``) as in iscc-bio's parts,
        and ``plane_digests``: one 16-digit hex xxh3-64 per plane, in
        IMAGEWALK order (``bytes.fromhex("".join(...))`` is the catalogue's
        ``scenes.plane_digests`` value)."""
        r = sum_result(self._sum)
        entry: dict = {"iscc_code": r["iscc_code"], "units": r["units"]}
        if self._simprints:
            entry["simprints"] = {"DATA_NONE_V0": self._simprints}
        if self._digests is not None:
            entry["plane_digests"] = [d.hex() for d in self._digests]
        return entry


def raw_file_code(
    location: Location | str | os.PathLike,
    cancel: threading.Event | None = None,
    limits: Limits | None = None,
) -> dict:
    """The ISCC-SUM of an image's bytes where they are (a
    :class:`~biocodes.infra.location.Location`, or a path to locate): one
    file; a directory store in TREEWALK order; a fileset's members (see
    :mod:`biocodes.sources.fileset`) in TREEWALK order of their relative
    paths; a remote store's keys in TREEWALK order.

    Equals ``iscc_sum.code_iscc_sum(path, wide=True)`` for a file and
    ``iscc-sum --tree`` for a directory. Unlike the tool, an unreadable file
    inside a tree is an error: a tree code that silently skipped a file would
    not identify the store. Setting ``cancel`` (from another thread) stops
    the hashing with :class:`concurrent.futures.CancelledError`. A remote
    store whose server cannot list its keys has no code; ``note`` says why.
    """
    if not isinstance(location, Location):
        from biocodes.sources import locate

        location = locate(location, limits)
    processor = SumHasher()
    if location.remote is not None:
        order = location.remote.treewalk_order()
        if order is None:
            return {
                "iscc_code": None,
                "units": None,
                "datahash": None,
                "filesize": None,
                "note": "no raw-file ISCC-SUM: the server does not list the "
                "store's keys, which TREEWALK needs",
            }
        for data in location.remote.read_keys(order):
            if cancel is not None and cancel.is_set():
                raise CancelledError(location.path)
            processor.update(data)
        return sum_result(processor)
    count = 0
    for file in location.files():
        count += 1
        try:
            with open(file, "rb") as f:
                while chunk := f.read(READ_BYTES):
                    if cancel is not None and cancel.is_set():
                        raise CancelledError(location.path)
                    processor.update(chunk)
        except OSError as exc:
            raise UnreadableError(
                location.path, f"cannot read {file}: {exc.strerror}", stage="rawsum"
            ) from None
    if count == 0:
        raise EmptyImageError(location.path, "directory holds no files", stage="rawsum")
    return sum_result(processor)
