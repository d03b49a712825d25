"""IMAGEWALK bytes through a hash other than ISCC-SUM (sha256, sha1)."""

from __future__ import annotations

import hashlib
import os

from biocodes.core.fingerprint import fingerprint_scene
from biocodes.core.imagewalk import canonical_chunks, walk
from biocodes.sources import open_source

ALGORITHMS = ("iscc-sum", "sha256", "sha1")


def pixhash(path: str | os.PathLike, algorithm: str = "iscc-sum") -> dict:
    """One digest per scene: the ISCC-SUM code, or the hex digest."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {ALGORITHMS}")
    digests = []
    with open_source(path) as source:
        for scene in source.scenes:
            if algorithm == "iscc-sum":
                digests.append(fingerprint_scene(source, scene)["iscc_code"])
                continue
            h = hashlib.new(algorithm)
            for plane in walk(source, scene):
                for chunk in canonical_chunks(plane.array):
                    h.update(chunk)
            digests.append(h.hexdigest())
    return {"algorithm": algorithm, "digests": digests}
