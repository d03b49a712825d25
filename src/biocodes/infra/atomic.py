"""Write a file so that readers see the old version or the whole new one, never half.

Every result file (tables, thumbnails, the report) is written to a temporary
sibling, flushed to disk and renamed into place; a crash leaves no partial file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(link: str | os.PathLike, keep: int = 1) -> Iterator[Path]:
    """Yield a fresh directory to fill; on success ``link`` points to it.

    ``link`` is a symlink swapped in one rename, so readers see the old set of
    files or the new one, never a mix, and a crash mid-write leaves the old set
    in place. The ``keep`` newest versions are kept beside it; older ones are
    removed. A plain directory found at ``link`` (older layout) becomes a version.
    """
    import shutil
    import uuid

    link = Path(link)
    versions = link.parent / f"{link.name}.versions"
    versions.mkdir(parents=True, exist_ok=True)
    if link.is_dir() and not link.is_symlink():
        os.replace(link, versions / f"{_stamp()}-legacy")
    new = versions / f"{_stamp()}-{uuid.uuid4().hex[:8]}"
    new.mkdir()
    try:
        yield new
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    tmp_link = link.with_name(f".{link.name}.{os.getpid()}.link")
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(os.path.relpath(new, link.parent))
    os.replace(tmp_link, link)
    others = sorted(p for p in versions.iterdir() if p.name != new.name)
    for old in others[: max(0, len(others) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def _stamp() -> str:
    import time

    now = time.time_ns()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now / 1e9)) + f"{now % 10**9:09d}"
