"""Exceptions that stop a whole command; `cli.main` maps each to an exit code.

Per-file problems are not exceptions that escape the scan: they become report
rows with verdict ERROR and a reason (see `pipeline`).
"""
from __future__ import annotations


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (or its type's name), for one-line reports."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if limit is None else text[:limit]


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
