"""Errors that a user can act on.

Every failure that comes from the input (a missing file, a corrupt image, an
unsupported dtype) is a :class:`BiocodeError`. Its message is one line that names
the file and the cause, so the CLI and the workflow can show it without a
traceback and record it in the catalogue.
"""

from __future__ import annotations

import os
import re

#: the password of a URL's user info: scheme://user:PASSWORD@host
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]*(@)", re.I)


def redact_text(text: str) -> str:
    """``text`` with URL passwords replaced: messages, logs and recorded
    configs never carry a credential."""
    return _URL_PASSWORD.sub(r"\1<redacted>\2", text)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def display_path(path: str | bytes | os.PathLike) -> str:
    """A path as one line of valid UTF-8: bytes that are not UTF-8 become
    ``\\xNN`` and control characters are escaped. File names may hold newlines
    or any byte; catalogues (Parquet strings), logs and one-line messages
    cannot. A URL's password is redacted."""
    text = redact_text(os.fsencode(path).decode("utf-8", "backslashreplace"))
    if text.isprintable():
        return text
    return "".join(
        ch
        if ch.isprintable()
        else _ESCAPES.get(ch, f"\\x{ord(ch):02x}")
        if ord(ch) < 256
        else f"\\u{ord(ch):04x}"
        for ch in text
    )


#: where a message turns into a reader's internals: a repr (``<TiffTag 270
#: @70>``), an exception's constructor (``TiffFileError('...')``), "raised"
_INTERNALS = re.compile(r"<[^<>]*>|\b\w+(Error|Exception)\(|\braised\b|Traceback")


def short_cause(message: str | None, path: str | None = None) -> str:
    """A failure's cause in words for a summary line or the report: the
    message without the path it starts with and without the reader's
    internals that may follow the cause (those stay in the catalogue's
    ``errors.message`` and the logs)."""
    text = message or ""
    if path and text.startswith(f"{path}: "):
        text = text[len(path) + 2 :]
    clauses = text.split(": ")
    for i, clause in enumerate(clauses[1:], 1):
        if _INTERNALS.search(clause):
            return ": ".join(clauses[:i])
    return text


def undisplay_path(text: str) -> str:
    """The OS's name for a path :func:`display_path` printed: ``\\xNN``,
    ``\\uNNNN``, ``\\n``, ``\\r``, ``\\t`` turned back into what they
    stand for (bytes that are not UTF-8 as those bytes). Used only when the
    text as given names nothing: a literal backslash in a name is ambiguous."""
    import re

    back = {v: k for k, v in _ESCAPES.items()}

    def one(tok: str) -> bytes:
        if tok in back:
            return back[tok].encode()
        if tok.startswith("\\x"):
            return bytes([int(tok[2:], 16)])
        return chr(int(tok[2:], 16)).encode("utf-8", "surrogatepass")

    parts = re.split(r"(\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\[nrt])", text)
    raw = b"".join(
        one(p) if i % 2 else p.encode("utf-8", "surrogateescape")
        for i, p in enumerate(parts)
    )
    return os.fsdecode(raw)


class BiocodeError(Exception):
    """A problem with one input: what happened, to which file, and why."""

    #: short machine-readable kind, stored as ``error_type`` in the catalogue
    kind = "error"

    def __init__(self, path: str, cause: str, *, stage: str = "read") -> None:
        self.path = redact_text(display_path(path))
        self.cause = redact_text(" ".join(str(cause).split()))  # always one line
        self.stage = stage
        super().__init__(f"{self.path}: {self.cause}")

    def to_dict(self) -> dict:
        """The JSON ``error`` object of the CLI contract."""
        return {"type": self.kind, "stage": self.stage, "message": str(self)}


def path_error(path: str | os.PathLike, exc: OSError, stage: str) -> BiocodeError:
    """The error to show for a failed stat() or realpath(): a symlink loop, a
    dangling link, a missing path, or the OS's reason."""
    import errno

    if exc.errno == errno.ELOOP:
        return SymlinkError(path, "symlink loop", stage=stage)
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            target = display_path(os.readlink(path))
            return SymlinkError(
                path, f"broken symlink: its target {target} does not exist", stage=stage
            )
        return NotFoundError(path, "no such file or directory", stage=stage)
    return UnreadableError(path, f"cannot stat: {exc.strerror}", stage=stage)


#: the top-level packages of the readers and codecs biocodes calls: an
#: exception that escapes from them is the reader failing on this file
READER_PACKAGES = frozenset(
    """aicspylibczi bffile bioio czifile dask fsspec imagecodecs imageio
    jpype mrcfile nd2 numcodecs ome_types ome_zarr PIL png pylibCZIrw readlif
    resource_backed_dask_array s3fs scyjava tifffile xarray xmlschema zarr
    """.split()
)


def _reader_that_raised(exc: BaseException) -> str | None:
    """The reader package an exception escaped from, or None when it was
    raised by biocodes' own code (or the standard library it called)."""
    if type(exc).__module__.startswith("java."):  # a Bio-Formats exception
        return "Bio-Formats"
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    ours = [i for i, name in enumerate(frames) if name.split(".")[0] == "biocodes"]
    for name in frames[ours[-1] + 1 if ours else 0 :]:  # what biocodes called
        top = name.split(".")[0]
        if top in READER_PACKAGES or top.startswith("bioio"):
            return top
    return None


def as_biocode_error(path: str, exc: BaseException) -> BiocodeError:
    """Any failure as a one-line BiocodeError.

    A reader's own crash on a file (a Bio-Formats NullPointerException, an
    IndexError inside a plugin) is ``unreadable``: the user needs another
    reader or another copy of the file. Only an exception raised by biocodes'
    own code is ``internal``, which is a bug to report."""
    if isinstance(exc, BiocodeError):
        return exc
    reader = _reader_that_raised(exc)
    if reader is not None:
        return UnreadableError(
            path,
            f"the reader ({reader}) failed on this file: {type(exc).__name__}: {exc}",
        )
    err = BiocodeError(path, f"internal error {type(exc).__name__}: {exc}")
    err.kind = "internal"
    return err


def raise_as_reader_error(path: str, exc: Exception) -> None:
    """Re-raise a reader's crash as the ``unreadable`` BiocodeError the
    library promises; anything else (biocodes' own bugs) unchanged."""
    err = as_biocode_error(path, exc)
    if err.kind == "internal":
        raise exc
    raise err from exc


class NotFoundError(BiocodeError):
    kind = "not_found"


class UnreadableError(BiocodeError):
    """No reader can open the file, or decoding its pixels failed."""

    kind = "unreadable"


class UnsupportedError(BiocodeError):
    """The file is readable but holds something IMAGEWALK cannot hash."""

    kind = "unsupported"


class EmptyImageError(BiocodeError):
    """A scene with a zero-size dimension, or a file without scenes."""

    kind = "empty"


class TruncatedError(BiocodeError):
    """The file ends before the pixel data it declares."""

    kind = "truncated"


class TooLargeError(BiocodeError):
    """A header declares dimensions beyond the configured limits."""

    kind = "too_large"


class ChangedError(BiocodeError):
    """The file changed while it was read: its codes would mix two versions."""

    kind = "changed_during_read"


class OutsideRootsError(BiocodeError):
    """A path (or a symlink's target) lies outside the configured roots."""

    kind = "outside_roots"


class SymlinkError(BiocodeError):
    """A symlink that cannot be followed: a loop, or a missing target."""

    kind = "bad_symlink"


class WorkerDiedError(BiocodeError):
    """Every worker that held this image died while processing it."""

    kind = "worker_died"


class OutOfMemoryError(WorkerDiedError):
    """A worker was restarted for exceeding its memory limit on this image."""

    kind = "out_of_memory"
