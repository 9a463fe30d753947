"""The labels `dfscan evaluate` reads: a DFDC metadata.json or a CSV `path` (or `file`, `filename`),`label`
naming videos inside the data folder, and a subset CSV of face-crop images. Read through data_files:
a malformed file is a DataError naming the file and line, and no name leads out of the data folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..common.errors import DataError
from .data_files import csv_rows, inside, read_text

FAKE_WORDS = {"FAKE": 1, "1": 1, "TRUE": 1, "REAL": 0, "0": 0, "FALSE": 0}
# The video's column in a labels CSV, by preference: dfscan's own `path`, the common `file`, DFDC's `filename`.
VIDEO_COLUMNS = ("path", "file", "filename")


def read_labels(path: Path, base: Path) -> dict[Path, int]:
    """{resolved video path: 0 REAL / 1 FAKE} from a DFDC metadata.json or a CSV `path` (or `file`),`label`.

    Names are relative to `base`, the folder of videos; one that leads out of it (an absolute path
    elsewhere, `..`) is refused: evaluate reads the dataset it was given and nothing else.
    """
    text = read_text(path, "labels")
    pairs = _json_labels(path, text) if path.suffix.lower() == ".json" else _csv_labels(path, text)
    out: dict[Path, int] = {}
    for where, name, raw in pairs:
        label = FAKE_WORDS.get(str(raw).strip().upper())
        if label is None:
            raise DataError(f"{path}, {where}: label {str(raw)[:40]!r} is neither FAKE nor REAL")
        out[inside(base, name, path, where).resolve()] = label
    if not out:
        raise DataError(f"{path} lists no labelled video")
    return out


def _json_labels(path: Path, text: str) -> list[tuple[str, str, Any]]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{path} is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a DFDC metadata.json object {{\"file.mp4\": {{\"label\": ...}}}}")
    rows = []
    for name, entry in data.items():
        if not isinstance(entry, dict) or "label" not in entry:
            raise DataError(f"{path}, entry {name[:80]!r}: no \"label\"")
        rows.append((f"entry {name[:80]!r}", name, entry["label"]))
    return rows


def _csv_labels(path: Path, text: str) -> list[tuple[str, str, Any]]:
    header, rows = csv_rows(path, text, (), "a labels CSV")
    column = next((c for c in VIDEO_COLUMNS if c in header), None)
    if column is None or "label" not in header:
        raise DataError(f"{path}: a labels CSV needs a video column ({' or '.join(VIDEO_COLUMNS)}) and a label "
                        f"column (found {', '.join(header) or 'none'})")
    found = []
    for n, line in rows:
        if not (line.get(column) or "").strip():
            raise DataError(f"{path}, line {n}: empty {column}")
        found.append((f"line {n}", line[column].strip(), line.get("label") or ""))
    return found


def read_subset(path: Path) -> set[str]:
    """Image paths (`<video>/<frame>.jpg`) from a CSV with an `image` column; only `test` rows if it has `side`."""
    _, rows = csv_rows(path, read_text(path, "the subset"), ("image",), "a subset CSV (as a train run's split.csv)")
    return {r["image"].strip() for _, r in rows if (r.get("side") or "test").strip() == "test"}
