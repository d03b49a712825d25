"""The zarr store every OME-Zarr read goes through, local or remote.

Kept apart from :mod:`biocodes.sources.zarr` so that importing the sources
(the scan does, for :func:`~biocodes.sources.zarr.is_zarr_store`) does not
import zarr.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zarr.storage import WrapperStore

from biocodes.infra.limits import Limits
from biocodes.infra.remote import ZARR_META, RemoteStore, is_remote
from biocodes.sources.base import ChunkError


@dataclass
class ArrayReads:
    """What the checked store knows, and has found, about one array's chunks."""

    #: its stored chunks are bare blosc frames (headers checked before use)
    blosc: bool = False
    #: the array's shape, its chunk shape (inner chunks for a sharded array)
    #: and its shard shape (None unless sharded)
    shape: tuple[int, ...] = ()
    chunks: tuple[int, ...] = ()
    shards: tuple[int, ...] | None = None
    #: turns a stored key (relative to the array) into its grid coordinates
    decode_key: Any = None
    #: the sharding codec (its index layout), for a sharded array
    sharding: Any = None
    #: keys whose absent chunks are counted already
    seen: set[str] = field(default_factory=set)
    #: chunks (inner chunks of a sharded array) found absent
    absent: int = 0

    @property
    def total(self) -> int:
        """The array's chunk count (inner chunks of a sharded array)."""
        return math.prod(-(-n // c) for n, c in zip(self.shape, self.chunks))

    def chunks_in(self, coords: tuple[int, ...]) -> int:
        """The chunks of the storage unit (a shard, or one chunk) at grid
        ``coords`` that lie inside the array."""
        if self.shards is None:
            return 1
        count = 1
        for n, c, s, i in zip(self.shape, self.chunks, self.shards, coords):
            inside = max(0, min(s, n - i * s))
            count *= -(-inside // c)
        return count


class CheckedStore(WrapperStore):
    """A read-only zarr store that refuses what zarr would quietly accept.

    zarr reads an absent chunk as the fill value, as the spec says, and real
    writers leave out every all-fill chunk by default (zarr-python 3's
    ``write_empty_chunks=False``). So an absent chunk of a registered array
    reads as the fill value and is counted (:meth:`absent`), a missing shard
    as all of its inner chunks and an empty entry of a shard's index as one;
    with ``missing="error"`` an absent chunk raises instead. A blosc chunk
    whose header disagrees with its length raises. Requests to a remote store
    go through :meth:`RemoteStore.call`: bounded, with deadlines and retries
    (a 404 is an absent chunk; any other failure is an error).
    """

    def __init__(
        self,
        store: Any,
        remote: RemoteStore | None = None,
        missing: str = "fill",
        arrays: dict[str, ArrayReads] | None = None,
    ) -> None:
        super().__init__(store)
        self.remote = remote
        self.missing = missing
        #: array path -> what is known and found about its chunks
        self.arrays: dict[str, ArrayReads] = {} if arrays is None else arrays

    def _with_store(self, store: Any) -> CheckedStore:
        return type(self)(store, self.remote, self.missing, self.arrays)

    def register(self, array: Any, blosc: bool) -> None:
        """Check and count the chunks of ``array`` (a zarr Array of this
        store) from now on."""
        from zarr.codecs import ShardingCodec

        meta = array.metadata
        encoding = getattr(meta, "chunk_key_encoding", None)
        if encoding is not None:  # zarr v3: "c/1/2" (default) or "1.2" (v2)
            sep = str(getattr(encoding, "separator", "/"))
            prefix = "c" + sep if getattr(encoding, "name", "") == "default" else ""
        else:  # zarr v2: "1.2" or "1/2"
            sep, prefix = getattr(meta, "dimension_separator", ".") or ".", ""

        def decode(key: str) -> tuple[int, ...]:
            if not key.startswith(prefix):
                raise ValueError(key)
            return tuple(int(p) for p in key[len(prefix) :].split(sep))

        codecs = getattr(meta, "codecs", ())
        sharding = next((c for c in codecs if isinstance(c, ShardingCodec)), None)
        self.arrays[array.store_path.path] = ArrayReads(
            blosc=blosc,
            shape=tuple(array.shape),
            chunks=tuple(array.chunks),
            shards=None if array.shards is None else tuple(array.shards),
            decode_key=decode,
            sharding=sharding,
        )

    def absent(self, array: Any) -> ArrayReads | None:
        """What the reads of ``array`` found (None if it is not registered)."""
        return self.arrays.get(array.store_path.path)

    def _chunk_of(self, key: str) -> tuple[str, ArrayReads] | None:
        """(the key relative to its array, the array) if ``key`` is a chunk
        (or shard) of a registered array."""
        if posixpath.basename(key) in ZARR_META:
            return None
        for prefix, reads in self.arrays.items():
            if key.startswith(prefix + "/"):
                return key[len(prefix) + 1 :], reads
        return None

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
        found = self._chunk_of(key)
        if found is None:
            return value
        name, reads = found
        if value is None:
            if self.missing == "error":
                raise ChunkError(_missing(key))
            if key not in reads.seen:
                reads.seen.add(key)
                reads.absent += reads.chunks_in(_coords(reads, name))
            return None
        if reads.sharding is not None and key not in reads.seen:
            await self._count_shard(key, name, reads, value, byte_range, prototype)
        if reads.blosc and byte_range is None:
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

    async def _count_shard(
        self,
        key: str,
        name: str,
        reads: ArrayReads,
        value: Any,
        byte_range: Any,
        prototype: Any,
    ) -> None:
        """Count the empty entries of a shard's index (inner chunks the
        writer left out) once per shard, from the first read of the shard:
        the whole shard or its index (zarr reads the index first)."""
        from zarr.codecs.sharding import ShardingCodecIndexLocation

        codec = reads.sharding
        per_shard = tuple(s // c for s, c in zip(reads.shards, reads.chunks))
        size = codec._shard_index_size(per_shard)
        data = value.as_numpy_array().view("u1")
        at_start = codec.index_location == ShardingCodecIndexLocation.start
        if byte_range is None:
            index = data[:size] if at_start else data[len(data) - size :]
        elif len(data) == size:
            index = data
        else:  # an inner chunk read before its index: not zarr's order
            return
        reads.seen.add(key)
        decoded = await codec._decode_shard_index(
            prototype.buffer.from_bytes(bytes(index)), per_shard
        )
        empty = ~decoded.get_full_chunk_map()
        coords = _coords(reads, name)
        # inner chunks beyond the array's edge are never written: not absent
        inside = tuple(
            slice(0, -(-max(0, min(s, n - i * s)) // c))
            for n, c, s, i in zip(reads.shape, reads.chunks, reads.shards, coords)
        )
        absent = int(empty[inside].sum())
        if absent and self.missing == "error":  # the same policy as a shard
            raise ChunkError(_missing(f"{key} (inner chunks: {absent})"))
        reads.absent += absent

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


def _coords(reads: ArrayReads, name: str) -> tuple[int, ...]:
    """Grid coordinates of a stored key (relative to its array); zeros if
    the key is not one of the array's chunk keys."""
    try:
        coords = tuple(int(i) for i in reads.decode_key(name))
    except Exception:
        coords = ()
    return coords if len(coords) == len(reads.shape) else (0,) * len(reads.shape)


def open_store(
    path: str, limits: Limits, remote: RemoteStore | None = None
) -> CheckedStore:
    """The checked, read-only zarr store of a local directory or a URL
    (through ``remote``, the store's one :class:`RemoteStore` for this read,
    if the caller has it)."""
    if remote is not None or is_remote(path):
        remote = remote or RemoteStore(path, limits)
        return CheckedStore(remote.zarr_store(), remote, limits.missing_chunks)
    from zarr.storage import LocalStore, ZipStore

    if Path(path).is_file():  # a zipped OME-Zarr (.ozx): the same checks
        return CheckedStore(
            ZipStore(path, mode="r", read_only=True), None, limits.missing_chunks
        )
    return CheckedStore(LocalStore(path, read_only=True), None, limits.missing_chunks)


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
        f"chunk {key} is missing from the store and limits.missing_chunks is "
        "error (a partial copy, or a writer that skips all-fill chunks, as "
        "zarr-python 3 does by default; 'fill' reads it as the fill value)"
    )
