"""Where one image's bytes are: a local file, a local directory store, a
remote store, or the member files of a fileset.

A :class:`Location` is resolved once per image (by
:func:`biocodes.sources.locate`, which knows the formats that make one image
out of several files) and handed down to everything that reads the image:
its state (size and mtime, compared before and after a read), the plane
source, and the raw-file ISCC-SUM. None of them decides again whether a path
is remote or part of a fileset.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biocodes.infra.errors import NotFoundError, UnreadableError, display_path
from biocodes.infra.limits import Limits

if TYPE_CHECKING:
    from biocodes.infra.remote import RemoteStore

FILE, DIRECTORY, REMOTE, FILESET = "file", "directory", "remote", "fileset"


@dataclass(frozen=True)
class Location:
    """Where the bytes of one image are.

    ``path`` is the image as named: a file (any member of a fileset), a
    directory store, or an ``s3://`` / ``http(s)://`` URL. ``kind`` is one of
    ``file``, ``directory``, ``remote``, ``fileset``. A fileset lists every
    ``members`` file (absolute paths, ``entry`` included) in TREEWALK order
    of their paths relative to ``base``; a remote store carries its one
    :class:`~biocodes.infra.remote.RemoteStore` (one connection pool, one
    key cache for the whole read).
    """

    path: str
    kind: str = FILE
    members: tuple[str, ...] = ()
    base: str | None = None
    #: a fileset's entry: the file holding the metadata (``path`` may name
    #: another member)
    entry: str | None = None
    remote: RemoteStore | None = field(default=None, compare=False, repr=False)
    #: the set as parsed by the source that found it (opaque here; see
    #: :class:`biocodes.sources.fileset.Fileset`)
    parsed: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def plain(cls, path: str | os.PathLike, limits: Limits | None = None) -> Location:
        """The location of ``path`` without format knowledge: a remote store,
        a local directory, or one file (filesets are found by
        :func:`biocodes.sources.locate`)."""
        from biocodes.infra.remote import RemoteStore, is_remote

        if is_remote(path):
            url = str(path).rstrip("/")
            return cls(url, REMOTE, remote=RemoteStore(url, limits))
        kind = DIRECTORY if os.path.isdir(path) else FILE
        return cls(os.fspath(path), kind)

    @classmethod
    def fileset(
        cls,
        path: str | os.PathLike,
        entry: str,
        members: Sequence[str],
        base: str,
        parsed: Any = None,
    ) -> Location:
        """The location of an image made of several files, named by ``path``
        (any member)."""
        return cls(os.fspath(path), FILESET, tuple(members), base, entry, None, parsed)

    @property
    def is_remote(self) -> bool:
        return self.kind == REMOTE

    def with_members(self, entry: str, members: Sequence[str], base: str) -> Location:
        """This image as a fileset of ``members`` (a reader reported them)."""
        return replace(
            self, kind=FILESET, members=tuple(members), base=base, entry=entry
        )

    def relpath(self, member: str) -> str:
        """A fileset member's path relative to ``base``, POSIX."""
        return Path(os.path.relpath(member, self.base)).as_posix()

    def check_members(self) -> None:
        """Raise the error that names the entry and the first member that is
        missing or not a regular file (looked up now: a member may have gone
        since the set was resolved)."""
        odd = [m for m in self.members if os.path.exists(m) and not _regular(m)]
        if odd:
            raise UnreadableError(
                self.entry,
                f"member {display_path(self.relpath(odd[0]))} of the fileset is "
                "not a regular file",
                stage="open",
            )
        missing = [m for m in self.members if not os.path.exists(m)]
        if missing:
            gone = missing[0]
            if gone == self.entry:
                raise NotFoundError(
                    gone, "the fileset's metadata file does not exist", stage="open"
                )
            raise NotFoundError(
                self.entry,
                f"member {display_path(self.relpath(gone))} of the fileset "
                f"(entry {display_path(self.entry)}) does not exist",
                stage="open",
            )

    def member_states(self) -> list[tuple[str, int, int]]:
        """(absolute path, size, mtime_ns) of every member of a fileset, in
        member order; a missing member raises the error that names it."""
        self.check_members()
        out = []
        for m in self.members:
            try:
                st = os.stat(m)
            except OSError as exc:
                raise NotFoundError(
                    self.entry,
                    f"member {display_path(self.relpath(m))} of the fileset: "
                    f"{exc.strerror}",
                    stage="open",
                ) from None
            out.append((m, st.st_size, st.st_mtime_ns))
        return out

    def state(self) -> tuple[int, int]:
        """Size and mtime (ns) of a file; for a directory store, the total
        size and the newest mtime of its files (the same over the members of
        a fileset, or the keys of a remote store: (-1, -1) if its server
        cannot list them). Compared before and after a read to catch an
        image that changed meanwhile. Raises OSError for a missing file."""
        if self.remote is not None:
            return self.remote.state()
        if self.kind == FILESET:
            members = self.member_states()
            return sum(m[1] for m in members), max(m[2] for m in members)
        st = os.stat(self.path)
        if not stat.S_ISDIR(st.st_mode):
            return st.st_size, st.st_mtime_ns
        size, mtime = 0, st.st_mtime_ns
        for dirpath, _dirs, files in os.walk(self.path):
            for f in files:
                st = os.stat(os.path.join(dirpath, f))
                size += st.st_size
                mtime = max(mtime, st.st_mtime_ns)
        return size, mtime

    def files(self) -> Iterator[str]:
        """The local files whose bytes make the raw-file ISCC-SUM, in order:
        the file itself, a directory's files in TREEWALK order, a fileset's
        members. (A remote store's keys are read by its RemoteStore.)"""
        if self.kind == FILESET:
            yield from (m for m, _size, _mtime in self.member_states())
        elif self.kind == DIRECTORY:
            from iscc_sum.treewalk import treewalk_iscc

            yield from map(str, treewalk_iscc(Path(self.path)))
        else:
            yield self.path


def _regular(path: str) -> bool:
    """Whether ``path`` is a regular file (a FIFO would block an open)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
