"""The zarr store every OME-Zarr read goes through, local or remote.

Kept apart from :mod:`biocodes.sources.zarr` so that importing the sources
(the scan does, for :func:`~biocodes.sources.zarr.is_zarr_store`) does not
import zarr.
"""

from __future__ import annotations

import posixpath
from typing import Any

from zarr.storage import WrapperStore

from biocodes.infra.limits import Limits
from biocodes.infra.remote import ZARR_META, RemoteStore, is_remote
from biocodes.sources.base import ChunkError


class CheckedStore(WrapperStore):
    """A read-only zarr store that refuses what zarr would quietly accept.

    zarr reads a missing chunk as the fill value, which is also what a
    half-copied store looks like, and numcodecs' blosc decodes a cut chunk
    into whatever memory follows. So a chunk of a registered array that is
    missing raises (unless ``allow_missing``), and a blosc chunk whose header
    disagrees with its length raises. Requests to a remote store go through
    :meth:`RemoteStore.call`: bounded, with deadlines and retries.
    """

    def __init__(
        self,
        store: Any,
        remote: RemoteStore | None = None,
        allow_missing: bool = False,
        arrays: dict[str, bool] | None = None,
    ) -> None:
        super().__init__(store)
        self.remote = remote
        self.allow_missing = allow_missing
        #: array path -> whether its stored chunks are bare blosc frames
        self.arrays: dict[str, bool] = {} if arrays is None else arrays

    def _with_store(self, store: Any) -> CheckedStore:
        return type(self)(store, self.remote, self.allow_missing, self.arrays)

    def _chunk_of(self, key: str) -> tuple[bool, bool]:
        """(whether ``key`` is a chunk of a registered array, whether it is
        stored as a bare blosc frame)."""
        if posixpath.basename(key) in ZARR_META:
            return False, False
        for prefix, blosc in self.arrays.items():
            if key.startswith(prefix + "/"):
                return True, blosc
        return False, False

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        def request():
            return self._store.get(key, prototype, byte_range)

        cached = None if self.remote is None else self.remote.cached(key)
        if cached is not None:  # downloaded by the raw-file walk of this read
            value = prototype.buffer.from_bytes(_byte_range(cached, byte_range))
        elif self.remote is None:
            value = await request()
        else:
            value = await self.remote.call(f"GET {key}", request)
        chunk, blosc = self._chunk_of(key)
        if not chunk:
            return value
        if value is None:
            if self.allow_missing:
                return None
            raise ChunkError(_missing(key))
        if blosc and byte_range is None:
            # a blosc frame's header: version, versionlz, flags, typesize,
            # nbytes (decoded), blocksize, cbytes (the frame's own length)
            head = bytes(value.as_numpy_array()[:16])
            size = len(value)
            if len(head) < 16 or int.from_bytes(head[12:16], "little") != size:
                raise ChunkError(
                    f"chunk {key} is truncated or damaged (its blosc header does "
                    f"not match its {size} bytes)"
                )
        return value

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> list:
        return [await self.get(k, prototype, r) for k, r in key_ranges]

    async def exists(self, key: str) -> bool:
        if self.remote is None:
            return await self._store.exists(key)
        return await self.remote.call(f"HEAD {key}", lambda: self._store.exists(key))

    async def _listed(self, what: str, listing: Any) -> Any:
        """A listing's names, fetched whole through :meth:`RemoteStore.call`
        (bounded, retried) for a remote store: a group's member names (a
        bioformats2raw root, a plate's wells) are directory pages, which a
        flaky server can fail like any chunk."""

        async def collect() -> list[str]:
            return [name async for name in listing()]

        names = await (
            collect() if self.remote is None else self.remote.call(what, collect)
        )
        for name in names:
            yield name

    def list(self) -> Any:
        return self._listed("LIST", lambda: self._store.list())

    def list_prefix(self, prefix: str) -> Any:
        return self._listed(f"LIST {prefix}", lambda: self._store.list_prefix(prefix))

    def list_dir(self, prefix: str) -> Any:
        return self._listed(f"LIST {prefix}/", lambda: self._store.list_dir(prefix))


def open_store(
    path: str, limits: Limits, remote: RemoteStore | None = None
) -> CheckedStore:
    """The checked, read-only zarr store of a local directory or a URL
    (through ``remote``, the store's one :class:`RemoteStore` for this read,
    if the caller has it)."""
    if remote is not None or is_remote(path):
        remote = remote or RemoteStore(path, limits)
        return CheckedStore(remote.zarr_store(), remote, limits.allow_missing_chunks)
    from zarr.storage import LocalStore

    return CheckedStore(
        LocalStore(path, read_only=True), None, limits.allow_missing_chunks
    )


def _byte_range(data: bytes, byte_range: Any) -> bytes:
    """The part of a key's bytes a zarr ByteRequest asks for."""
    from zarr.abc.store import (
        OffsetByteRequest,
        RangeByteRequest,
        SuffixByteRequest,
    )

    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :] if byte_range.suffix else b""
    raise TypeError(f"unexpected byte range {byte_range!r}")


def _missing(key: str) -> str:
    return (
        f"chunk {key} is missing from the store (a partial copy, or a writer "
        "that skips all-fill chunks, as zarr-python 3 does by default); set "
        "limits.allow_missing_chunks to read missing chunks as the fill value"
    )
