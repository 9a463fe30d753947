"""Exceptions that stop a whole command; `cli.main` maps each to an exit code.

Per-file problems are not exceptions that escape the scan: they become report
rows with verdict ERROR and a reason (see `pipeline`), made one line by `file_reason`.
"""
from __future__ import annotations

UNREADABLE = "cannot read file"  # how a file's reason starts when its bytes could not be read (file_reason)


def first_line(exc: BaseException, limit: int | None = None, skip: tuple[str, ...] = ()) -> str:
    """The first line of an exception's message (or its type's name), for one-line reports.

    The one home for error one-liners: the helpers that know a library's messages (container.decoder_message,
    runtime.ov_message, distributed's Ray errors) build on it. `skip`: prefixes of lines that say nothing.
    """
    lines = (line.strip() for line in str(exc).splitlines())
    text = next((line for line in lines if line and not line.startswith(skip)), type(exc).__name__)
    return text if limit is None else text[:limit]


def file_reason(exc: BaseException) -> str:
    """A report row's reason for a file that could not be scanned; an OSError (permissions, I/O) says
    UNREADABLE and the system's words, without the path (the row names the file)."""
    if isinstance(exc, OSError):
        return f"{UNREADABLE}: {exc.strerror or first_line(exc)}"
    return first_line(exc)


class DfscanError(Exception):
    """An error that ends the command with a clear one-line message."""

    exit_code = 2


class ConfigError(DfscanError):
    """Options that do not make sense together, or a value out of range."""


class ModelError(DfscanError):
    """The model cannot be found, loaded or used."""


class VideoError(Exception):
    """One video cannot be decoded; becomes an ERROR row, never a crash."""


class DataError(DfscanError):
    """A training or evaluation dataset that cannot be read (layout, metadata, labels)."""
