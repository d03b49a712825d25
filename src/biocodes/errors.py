"""Errors that a user can act on.

Every failure that comes from the input (a missing file, a corrupt image, an
unsupported dtype) is a :class:`BiocodeError`. Its message is one line that names
the file and the cause, so the CLI and the workflow can show it without a
traceback and record it in the catalogue.
"""

from __future__ import annotations


class BiocodeError(Exception):
    """A problem with one input: what happened, to which file, and why."""

    #: short machine-readable kind, stored as ``error_type`` in the catalogue
    kind = "error"

    def __init__(self, path: str, cause: str, *, stage: str = "read") -> None:
        self.path = str(path)
        self.cause = " ".join(str(cause).split())  # always one line
        self.stage = stage
        super().__init__(f"{self.path}: {self.cause}")

    def to_dict(self) -> dict:
        """The JSON ``error`` object of the CLI contract."""
        return {"type": self.kind, "stage": self.stage, "message": str(self)}


def as_biocode_error(path: str, exc: BaseException) -> BiocodeError:
    """Any failure as a one-line BiocodeError; a bug becomes kind ``internal``."""
    if isinstance(exc, BiocodeError):
        return exc
    err = BiocodeError(path, f"internal error {type(exc).__name__}: {exc}")
    err.kind = "internal"
    return err


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
