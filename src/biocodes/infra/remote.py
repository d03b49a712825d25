"""Directory stores on object stores and web servers: ``s3://`` and ``http(s)://``.

Everything remote goes through one fsspec filesystem per store and through
zarr's own event loop, with the same three rules for every request: at most
``remote_concurrency`` at once, at most ``remote_timeout`` seconds each, and
``remote_retries`` more tries (with backoff) after a transient failure (a
dropped connection, a 5xx, a timeout). A request that still fails raises
:class:`~biocodes.infra.errors.UnreadableError`; nothing waits forever.

Credentials come from each library's usual environment and files (``AWS_*``
variables, ``~/.aws``, ``FSSPEC_S3_*``); biocodes never stores them.
"""

from __future__ import annotations

import asyncio
import errno
import os
import posixpath
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from unicodedata import normalize
from urllib.parse import unquote, urlsplit

from biocodes.infra.errors import UnreadableError
from biocodes.infra.limits import Limits

SCHEMES = ("s3", "http", "https")
#: zarr metadata documents; every other key inside an array is a chunk
ZARR_META = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})

T = TypeVar("T")


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a URL biocodes reads through fsspec."""
    return isinstance(path, str) and urlsplit(path).scheme.lower() in SCHEMES


def url_name(url: str) -> str:
    """The last path component of a URL (``image.zarr``)."""
    return posixpath.basename(urlsplit(url).path.rstrip("/"))


def _sync(coro: Awaitable[T]) -> T:
    """Run on zarr's event loop: one loop for the store and our own requests."""
    from zarr.core.sync import sync

    return sync(coro)


class RemoteStore:
    """One remote directory store: its filesystem, and requests with the
    concurrency, timeout and retry rules above."""

    def __init__(self, url: str, limits: Limits | None = None) -> None:
        self.url = url.rstrip("/")
        self.limits = limits or Limits()
        scheme = urlsplit(url).scheme.lower()
        self.http = scheme in ("http", "https")
        self.fs, self.root, self._gate = _filesystem(self.url, self.limits)
        #: keys kept on disk during :meth:`keeping_keys`
        self.cache: KeyCache | None = None

    @staticmethod
    def options(scheme: str, limits: Limits) -> dict[str, Any]:
        """Client settings: our retries are the only ones, so each library's
        own are off, and every request has a deadline."""
        timeout = limits.remote_timeout
        if scheme == "s3":
            return {
                "skip_instance_cache": True,
                "config_kwargs": {
                    "connect_timeout": timeout,
                    "read_timeout": timeout,
                    "retries": {"max_attempts": 1, "mode": "standard"},
                },
            }
        import aiohttp

        return {
            "skip_instance_cache": True,
            "use_listings_cache": False,
            "client_kwargs": {"timeout": aiohttp.ClientTimeout(total=timeout)},
        }

    def path_of(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    async def call(
        self, what: str, make: Callable[[], Awaitable[T]], deadline: bool = True
    ) -> T:
        """``await make()`` under the concurrency gate, with a deadline and
        retries on transient errors; ``what`` names the request in errors.
        Without ``deadline`` (a paginated S3 listing, many requests) only the
        client's own per-request timeouts apply."""
        tries = self.limits.remote_retries + 1
        timeout = self.limits.remote_timeout if deadline else None
        for attempt in range(tries):
            try:
                async with self._gate:
                    return await asyncio.wait_for(make(), timeout)
            except Exception as exc:
                if not transient(exc):
                    raise
                if attempt + 1 == tries:
                    raise UnreadableError(
                        self.url,
                        f"{what} failed {tries} times (last: {describe(exc)}); "
                        "the server or network is failing, read again next run",
                    ) from None
                await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
        raise AssertionError("unreachable")

    async def read(self, key: str) -> bytes:
        """A whole key's bytes (from the store's :class:`KeyCache`, if it
        holds them; kept there for the pixel walk otherwise)."""
        cache = self.cache
        if cache is not None and (data := cache.get(key)) is not None:
            return data
        path = self.path_of(key)
        data = await self.call(f"GET {key}", lambda: self.fs._cat_file(path))
        if cache is not None:
            cache.put(key, data)
        return data

    def cached(self, key: str) -> bytes | None:
        """A key's bytes if this run has them on disk already."""
        return None if self.cache is None else self.cache.get(key)

    def listing(self, sizes: bool = True) -> dict[str, tuple[int, int]] | None:
        """Every key of the store with its size and mtime (ns, 0 if the server
        gives none), or None when the server cannot list the store. Without
        ``sizes``, an HTTP store's keys are not asked one by one (HEAD) and
        map to (0, 0)."""
        return _sync(self._listing(sizes))

    async def _listing(self, sizes: bool) -> dict[str, tuple[int, int]] | None:
        if not self.http:
            found = await self.call(
                "LIST", lambda: self.fs._find(self.root, detail=True), deadline=False
            )
            prefix = self.root + "/"
            return {
                name[len(prefix) :]: (int(info.get("size") or 0), _mtime_ns(info))
                for name, info in found.items()
                if name.startswith(prefix) and info.get("type") != "directory"
            } or None
        keys = await self._http_keys("")
        if not keys:
            return None
        if not sizes:
            return dict.fromkeys(keys, (0, 0))
        infos = await asyncio.gather(
            *(self.call(f"HEAD {k}", lambda k=k: self._head(k)) for k in keys)
        )
        return {k: (int(i.get("size") or 0), _mtime_ns(i)) for k, i in zip(keys, infos)}

    async def _head(self, key: str) -> dict:
        """Size and Last-Modified of one key. Not fsspec's ``info``, which
        turns a 500 into FileNotFoundError, so a hiccup would look like a
        missing file."""
        session = await self.fs.set_session()
        url = self.fs.encode_url(self.path_of(key))
        async with session.head(url, allow_redirects=True) as r:
            r.raise_for_status()
            return {
                "size": r.headers.get("Content-Length"),
                "Last-Modified": r.headers.get("Last-Modified"),
            }

    async def _http_keys(self, prefix: str) -> list[str]:
        """Keys below ``prefix``, from the server's directory pages."""
        dirs, files = await self._list_dir(prefix)
        below = await asyncio.gather(*(self._http_keys(f"{prefix}{d}/") for d in dirs))
        return [prefix + f for f in files] + [k for keys in below for k in keys]

    def list_dir(self, prefix: str) -> tuple[list[str], list[str]]:
        """The subdirectory and file names directly below ``prefix`` (a key
        prefix ending in ``/``, or ``""`` for the store's root), sorted."""
        return _sync(self._list_dir(prefix))

    async def _list_dir(self, prefix: str) -> tuple[list[str], list[str]]:
        url = self.path_of(prefix.rstrip("/")) + "/"
        try:
            entries = await self.call(
                f"LIST {prefix or '/'}", lambda: self.fs._ls(url, detail=True)
            )
        except FileNotFoundError:
            return [], []
        dirs, files = set(), set()
        for entry in entries:
            name = entry["name"]
            if self.http:  # links on the page: keep those right below it
                if not name.startswith(url):
                    continue
                name = unquote(name[len(url) :])
            else:
                name = name.rstrip("/").rsplit("/", 1)[-1]
            is_dir = entry.get("type") == "directory" or name.endswith("/")
            name = name.rstrip("/")
            if not name or "/" in name or name in (".", ".."):
                continue
            (dirs if is_dir else files).add(name)
        return sorted(dirs), sorted(files)

    def state(self) -> tuple[int, int]:
        """Total size and newest mtime of the store's keys, as
        :meth:`biocodes.infra.location.Location.state` gives for a local store;
        (-1, -1)
        when the server cannot list the store, so nothing can be compared."""
        keys = self.listing()
        if keys is None:
            return -1, -1
        return sum(s for s, _ in keys.values()), max(m for _, m in keys.values())

    def zarr_store(self):  # noqa: ANN201
        """A read-only zarr store over the same filesystem."""
        from zarr.storage import FsspecStore

        return FsspecStore(fs=self.fs, path=self.root, read_only=True)

    def treewalk_order(self) -> list[str] | None:
        """The store's keys in TREEWALK order (``iscc-sum --tree`` on a local
        copy hashes its files in this order), or None when the server cannot
        list the store."""
        keys = self.listing(sizes=False)
        if keys is None:
            return None
        return list(treewalk_keys(keys, lambda k: _sync(self.read(k))))

    def read_keys(self, keys: Sequence[str]) -> Iterator[bytes]:
        """The bytes of ``keys``, in order, fetched ``remote_concurrency`` at a
        time (kept in the key cache during :meth:`keeping_keys`)."""
        batch = max(1, self.limits.remote_concurrency)
        for start in range(0, len(keys), batch):
            part = keys[start : start + batch]
            yield from _sync(_gather(self.read(k) for k in part))

    @contextmanager
    def keeping_keys(self) -> Iterator[None]:
        """Within the block, keys downloaded by one walk (the raw-file
        ISCC-SUM) are kept on disk, up to ``limits.remote_cache_bytes``, for
        the next (the pixel walk): each key is downloaded once per read."""
        if self.limits.remote_cache_bytes <= 0 or self.cache is not None:
            yield
            return
        self.cache = KeyCache(self.limits.remote_cache_bytes)
        try:
            yield
        finally:
            cache, self.cache = self.cache, None
            cache.close()


class KeyCache:
    """A bounded on-disk copy of a remote store's keys, for one read.

    The raw-file ISCC-SUM walks every key of a store; the pixel walk then
    needs the chunks again. Keys are written to a private temporary directory
    as they are hashed (up to ``limit`` bytes), and the pixel walk takes them
    from there, so each key is downloaded once. The directory is removed
    when the read ends (:meth:`RemoteStore.keeping_keys`)."""

    def __init__(self, limit: int) -> None:
        import tempfile

        self.limit = limit
        self.used = 0
        self.dir = tempfile.mkdtemp(prefix="biocodes-remote-")
        self.files: dict[str, str] = {}

    def put(self, key: str, data: bytes) -> None:
        if key in self.files or self.used + len(data) > self.limit:
            return
        name = os.path.join(self.dir, f"{len(self.files)}")
        with open(name, "wb") as f:
            f.write(data)
        self.files[key] = name
        self.used += len(data)

    def get(self, key: str) -> bytes | None:
        name = self.files.get(key)
        if name is None:
            return None
        with open(name, "rb") as f:
            return f.read()

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


#: one filesystem (connection pool) and one concurrency gate per server and
#: settings, per process: every store, listing and raw-file walk shares them
_FILESYSTEMS: dict[tuple, tuple[Any, asyncio.Semaphore]] = {}
_ENV = ("AWS_", "FSSPEC_")


def _filesystem(url: str, limits: Limits) -> tuple[Any, str, asyncio.Semaphore]:
    """The shared async filesystem and gate for ``url``'s server, and the
    path in it."""
    import fsspec

    parts = urlsplit(url)
    # the S3 endpoint and keys come from the environment, which may change
    env = tuple(sorted(i for i in os.environ.items() if i[0].startswith(_ENV)))
    key = (parts.scheme.lower(), parts.netloc, limits, env)
    if key not in _FILESYSTEMS:
        options = RemoteStore.options(key[0], limits)
        fs, _ = fsspec.url_to_fs(url, asynchronous=True, **options)
        if hasattr(fs, "retries"):
            fs.retries = 1  # s3fs's own retry loop: ours is the only one
        if not _FILESYSTEMS:
            import atexit

            atexit.register(_close_all)
        _FILESYSTEMS[key] = fs, asyncio.Semaphore(limits.remote_concurrency)
    fs, gate = _FILESYSTEMS[key]
    return fs, fs._strip_protocol(url).rstrip("/"), gate


def _close_all() -> None:
    """Close the connection pools while zarr's loop still runs."""

    async def close() -> None:
        for fs, _gate in _FILESYSTEMS.values():
            session = getattr(fs, "_session", None)  # http
            client = getattr(fs, "_s3", None)  # s3
            try:
                if session is not None:
                    await session.close()
                if client is not None:
                    await client.__aexit__(None, None, None)
            except Exception:  # best effort at exit
                pass

    try:
        _sync(close())
    except Exception:  # the loop may be gone already
        pass
    _FILESYSTEMS.clear()


async def _gather(coros: Iterator[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*coros))


def _mtime_ns(info: dict) -> int:
    """Modification time from S3's LastModified or HTTP's Last-Modified."""
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    value = info.get("LastModified") or info.get("Last-Modified")
    if isinstance(value, str):
        try:
            value = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 0
    if isinstance(value, datetime):
        return int(value.timestamp() * 1e9)
    return 0


def _is_ignore_file(name: str) -> bool:
    return name.startswith(".") and name.endswith("ignore")


def _treewalk_order(name: str) -> tuple[bytes, bytes]:
    return normalize("NFC", name).encode("utf-8"), name.encode("utf-8")


def treewalk_keys(
    keys: dict[str, Any] | list[str], read: Callable[[str], bytes]
) -> Iterator[str]:
    """Keys in iscc-sum's TREEWALK order (``treewalk_iscc``): per directory,
    ``.*ignore`` files, then the other files, then each subdirectory, names
    sorted by NFC UTF-8; ``.isccignore`` patterns cascade down and
    ``*.iscc.json`` files are left out. ``read`` fetches an ignore file."""
    import pathspec

    tree: dict = {}
    for key in keys:
        node = tree
        *dirs, name = key.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = None

    def walk(node: dict, prefix: str, spec: Any) -> Iterator[str]:
        if ".isccignore" in node and node[".isccignore"] is None:
            lines = read(prefix + ".isccignore").decode("utf-8").splitlines()
            new = pathspec.PathSpec.from_lines(
                pathspec.patterns.GitWildMatchPattern, lines
            )
            spec = new if spec is None else spec + new

        def ignored(rel: str) -> bool:
            return spec is not None and (
                spec.match_file(rel) or spec.match_file(rel + "/")
            )

        names = sorted(node, key=_treewalk_order)
        files = [n for n in names if node[n] is None]
        for n in [f for f in files if _is_ignore_file(f)] + [
            f for f in files if not _is_ignore_file(f)
        ]:
            if not ignored(prefix + n) and not n.endswith(".iscc.json"):
                yield prefix + n
        for n in names:
            if node[n] is not None and not ignored(prefix + n):
                yield from walk(node[n], prefix + n + "/", spec)

    yield from walk(tree, "", None)


def transient(exc: BaseException) -> bool:
    """Whether trying the same request again may succeed."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | ConnectionError):
        return True
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - fsspec's http needs it
        aiohttp = None
    if aiohttp is not None:
        if isinstance(exc, aiohttp.ClientResponseError):
            return exc.status >= 500 or exc.status in (408, 429)
        if isinstance(exc, aiohttp.ClientError):
            return True  # dropped connection, cut payload
    if type(exc).__module__.startswith(("botocore", "aiobotocore")):
        name = type(exc).__name__
        return any(w in name for w in ("Connection", "Timeout", "Endpoint", "Read"))
    if isinstance(
        exc,
        FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError,
    ):
        return False
    if isinstance(exc, OSError):  # s3fs turns 5xx and throttling into these
        return exc.errno in (None, errno.EIO, errno.EAGAIN, errno.EBUSY, 0) or any(
            w in str(exc) for w in ("500", "502", "503", "504", "SlowDown")
        )
    return False


def describe(exc: BaseException) -> str:
    """One line for an error from a remote request."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
