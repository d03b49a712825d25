"""Limits on what one read may cost: sizes checked against a header before
any pixel is read, and the time and retries a remote store gets.

A corrupt or hostile header can declare 10⁶ × 10⁶ × 10⁴ pixels. The limits
turn that into a ``too_large`` error at open time, instead of an allocation
that the kernel's OOM killer ends. A plane is held in memory a few times over
(pixels, canonical bytes, the plane read ahead), so a worker needs about four
times ``max_plane_bytes``; the scene limit bounds the time one image may take.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from biocodes.infra.errors import TooLargeError


class DeclaredScene(Protocol):
    """What a limit is checked against: a scene as its file declares it
    (:class:`biocodes.sources.base.SceneInfo`)."""

    index: int
    dims: Mapping[str, int]
    dtype: Any
    plane_nbytes: int
    nbytes: int


GiB = 1 << 30


#: byte units as dask.utils.parse_bytes reads them (lower case)
_UNITS = {
    "": 1,
    "b": 1,
    **{p: 1000**i for i, p in enumerate(("k", "m", "g", "t", "p"), 1)},
    **{p + "b": 1000**i for i, p in enumerate(("k", "m", "g", "t", "p"), 1)},
    **{p + "i": 1024**i for i, p in enumerate(("k", "m", "g", "t", "p"), 1)},
    **{p + "ib": 1024**i for i, p in enumerate(("k", "m", "g", "t", "p"), 1)},
}


def parse_size(value: int | float | str) -> int:
    """Bytes from an int or a string such as ``"2 GiB"`` or ``"500MB"``, read
    as ``dask.utils.parse_bytes`` reads them, without importing dask: every
    workflow job parses its limits, and dask costs ~0.4 s to import."""
    if not isinstance(value, str):
        return int(value)
    text = value.replace(" ", "")
    if not any(ch.isdigit() for ch in text):
        text = f"1{text}"
    cut = len(text)
    while cut and text[cut - 1].isalpha():
        cut -= 1
    number, unit = text[:cut], text[cut:]
    try:
        n = float(number)
    except ValueError as exc:
        raise ValueError(f"Could not interpret '{number}' as a number") from exc
    try:
        return int(n * _UNITS[unit.lower()])
    except KeyError as exc:
        raise ValueError(f"Could not interpret '{unit}' as a byte unit") from exc


def _fmt(n: int) -> str:
    """Bytes for a person, as ``dask.utils.format_bytes`` writes them."""
    for prefix, k in (("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20)):
        if n >= k * 0.9:
            return f"{n / k:.2f} {prefix}B"
    if n >= 2**10 * 0.9:
        return f"{n / 2**10:.2f} kiB"
    return f"{n} B"


#: what a zarr chunk absent from its store means (``limits.missing_chunks``)
MISSING_CHUNKS = ("fill", "error")


@dataclass(frozen=True)
class Limits:
    #: one 2D plane (Y × X × bytes per pixel); default 2 GiB
    max_plane_bytes: int = 2 * GiB
    #: one scene (all planes); default 1 TiB
    max_scene_bytes: int = 1024 * GiB
    #: the old switch for :attr:`missing_chunks` (an alias kept working):
    #: True is "fill", False is "error", None leaves ``missing_chunks`` alone
    allow_missing_chunks: bool | None = None
    #: seconds one request to a remote store may take before it is retried
    remote_timeout: float = 30.0
    #: more tries after a transient failure (dropped connection, 5xx, timeout)
    remote_retries: int = 4
    #: requests in flight at once to one remote store
    remote_concurrency: int = 8
    #: disk space (in the temporary directory) that holds a remote store's
    #: keys between the raw-file walk and the pixel walk, so each is
    #: downloaded once; keys beyond it are downloaded again; 0 turns it off
    remote_cache_bytes: int = 16 * GiB
    #: a zarr chunk absent from its store: "fill" reads it as the array's
    #: fill value (the zarr spec's meaning; real writers leave out every
    #: all-fill chunk by default), "error" refuses the image, for archives
    #: that know they write every chunk
    missing_chunks: str = "fill"

    def __post_init__(self) -> None:
        if self.missing_chunks not in MISSING_CHUNKS:
            raise ValueError(
                f"missing_chunks must be one of {', '.join(MISSING_CHUNKS)}, "
                f"not {self.missing_chunks!r}"
            )
        if self.allow_missing_chunks is not None:
            policy = "fill" if self.allow_missing_chunks else "error"
            object.__setattr__(self, "missing_chunks", policy)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> Limits:
        """Limits from the config's ``limits`` section (missing keys: defaults)."""
        cfg = cfg or {}
        default = cls()
        old = cfg.get("allow_missing_chunks")
        policy = cfg.get("missing_chunks")
        if old is not None and policy is not None:
            if policy != ("fill" if old else "error"):
                raise ValueError(
                    f"limits.missing_chunks: {policy} contradicts its old key "
                    f"limits.allow_missing_chunks: {str(old).lower()}; keep one"
                )
            old = None
        return cls(
            parse_size(cfg.get("max_plane_bytes", default.max_plane_bytes)),
            parse_size(cfg.get("max_scene_bytes", default.max_scene_bytes)),
            None if old is None else bool(old),
            float(cfg.get("remote_timeout", default.remote_timeout)),
            int(cfg.get("remote_retries", default.remote_retries)),
            int(cfg.get("remote_concurrency", default.remote_concurrency)),
            parse_size(cfg.get("remote_cache_bytes", default.remote_cache_bytes)),
            str(policy or default.missing_chunks),
        )

    def check(self, path: str, scene: DeclaredScene) -> None:
        """Refuse a scene whose declared size exceeds a limit."""
        dims = "x".join(str(scene.dims[a]) for a in "TCZYX")
        if scene.plane_nbytes > self.max_plane_bytes:
            raise TooLargeError(
                path,
                f"scene {scene.index} declares planes of {_fmt(scene.plane_nbytes)} "
                f"(TCZYX {dims}, {scene.dtype}), over the per-plane limit of "
                f"{_fmt(self.max_plane_bytes)} (limits.max_plane_bytes)",
                stage="open",
            )
        if scene.nbytes > self.max_scene_bytes:
            raise TooLargeError(
                path,
                f"scene {scene.index} declares {_fmt(scene.nbytes)} of pixels "
                f"(TCZYX {dims}, {scene.dtype}), over the per-scene limit of "
                f"{_fmt(self.max_scene_bytes)} (limits.max_scene_bytes)",
                stage="open",
            )
