"""Text as dfscan writes it everywhere: names made safe to print or to write as UTF-8, and times.
The reports, the store and dfscan's other records all take theirs from here."""
from __future__ import annotations

import os
import time


def printable(text: str) -> str:
    """Text safe to show in a terminal: control characters (escape sequences, newlines) made visible."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in utf8_text(text))


def utf8_text(text: str) -> str:
    """Text any UTF-8 writer accepts: the bytes of a file name that are not UTF-8 become `\\xNN`.

    Python reads such a name with each bad byte as a lone surrogate (PEP 383), which no UTF-8
    file, SQLite or terminal accepts. `a\\xffb.mp4` in a report is the name with byte 0xFF.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") \
            if _only_escapes(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _only_escapes(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def path_text(path) -> str:
    """A path as written in every report, the store and the terminal (see `utf8_text`)."""
    return utf8_text(os.fspath(path))


def utf8_data(value):
    """`utf8_text` applied to every string of JSON-ready data."""
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, dict):
        return {utf8_text(k): utf8_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [utf8_data(v) for v in value]
    return value


def local_time(t: float, seconds: bool = False) -> str:
    """A moment in local time as people read it: `2026-11-30 15:26`; with `seconds`, also its seconds and
    the zone's name (`2026-11-30 15:26:18 CET`)."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M", time.localtime(t))


def iso_time(t: float | None = None) -> str:
    """Local time with its offset, as in the JSON reports and dfscan's own records: `2026-11-30T15:26:18+0100`;
    now by default."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def file_stamp(t: float | None = None) -> str:
    """Local time in a file or folder name: `20261130-152618`; now by default."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(t))
