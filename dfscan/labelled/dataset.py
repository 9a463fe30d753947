"""The Kaggle "dfdc-part-34" face-crop layout, shared by `train` and `evaluate`.

    DATA/images/metadata34.csv        filename,label,split,original (names end in .mp4)
    DATA/images/<video>/<frame>.jpg   square face crops, frames 0, 30, ..., 270

Nothing here imports TensorFlow. Images are read with `cv2.imread` (BGR, as the
reference notebook did) and handed on as RGB, the scanner's convention for crops,
so `dfscan.classifier.model_info.Preprocess` turns them into exactly what the model sees.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..common.errors import DataError

METADATA_NAME = "metadata34.csv"
METADATA_COLUMNS = ("filename", "label", "split", "original")
REFERENCE_FRAMES: tuple[int, ...] = tuple(range(0, 271, 30))
LABELS = {"REAL": 0, "FAKE": 1}

MISSING = "missing"
UNREADABLE = "unreadable (cv2.imread cannot decode it)"


@dataclass(frozen=True)
class VideoRow:
    """One line of metadata34.csv, names without their `.mp4` suffix."""

    name: str
    label: int  # 0 REAL, 1 FAKE
    split: str
    original: str | None  # the REAL video a FAKE was made from


def strip_mp4(name: str) -> str:
    name = name.strip()
    return name[:-4] if name.lower().endswith(".mp4") else name


def images_dir(data_dir: str | os.PathLike) -> Path:
    """DATA/images (the Kaggle layout), or DATA itself when it holds metadata34.csv."""
    data = Path(data_dir).expanduser()
    for candidate in (data / "images", data):
        if (candidate / METADATA_NAME).is_file():
            return candidate
    if not data.is_dir():
        raise DataError(f"dataset folder not found: {data}")
    raise DataError(f"{data} is not in the dfdc-part-34 layout: expected {data / 'images' / METADATA_NAME}")


def read_metadata(images: Path) -> list[VideoRow]:
    """metadata34.csv in file order; a malformed file is a DataError naming the file and line (data_files)."""
    from .data_files import csv_rows, read_text

    path = images / METADATA_NAME
    _, rows = csv_rows(path, read_text(path, "the metadata"), ("filename", "label", "original"),
                       f"{METADATA_NAME} ({','.join(METADATA_COLUMNS)})")
    return [_row(images, path, n, line) for n, line in rows]


def _row(images: Path, path: Path, n: int, line: dict[str, str]) -> VideoRow:
    from .data_files import inside

    label = (line.get("label") or "").strip().upper()
    if label not in LABELS:
        raise DataError(f"{path}, line {n}: label {(line.get('label') or '')[:40]!r} is neither REAL nor FAKE")
    name = strip_mp4(line.get("filename") or "")
    if not name:
        raise DataError(f"{path}, line {n}: empty filename")
    if "/" in name or "\\" in name or "\0" in name or name in (".", ".."):  # a video's folder of crops, right under images/
        inside(images, name, path, f"line {n}")  # says "not inside the dataset folder" for ../ and absolute names
        raise DataError(f"{path}, line {n}: filename {name[:80]!r} is a path; a name of a video is expected")
    original = strip_mp4(line.get("original") or "")
    # pandas writes a missing original as "NaN" or "nan" when the CSV is re-saved
    original = None if original.lower() in ("", "nan", "none") else original
    return VideoRow(name, LABELS[label], (line.get("split") or "").strip(), original if label == "FAKE" else None)


def frame_path(images: Path, video: str, frame: int) -> Path:
    return images / video / f"{frame}.jpg"


def video_frames(images: Path, video: str) -> list[Path]:
    """Every `<frame>.jpg` of a video's folder, in frame order (empty when the folder is missing)."""
    folder = images / video
    if not folder.is_dir():
        return []
    jpgs = [p for p in folder.iterdir() if p.suffix.lower() == ".jpg" and p.stem.isdigit()]
    return sorted(jpgs, key=lambda p: int(p.stem))


def read_face_crop(path: str | os.PathLike) -> np.ndarray | None:
    """An image as RGB uint8, read with cv2.imread like the reference notebook; None if unreadable."""
    import cv2

    img = cv2.imread(str(path))
    if img is None or img.ndim != 3 or img.shape[2] != 3:
        return None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_problem(path: Path) -> str | None:
    """Why an image cannot be used (missing, unreadable), or None when it can."""
    if not path.is_file():
        return MISSING
    return None if read_face_crop(path) is not None else UNREADABLE


def check_images(paths: Sequence[Path], workers: int = 4,
                 on_checked: Callable[[int], None] | None = None) -> dict[Path, str]:
    """{path: reason} for every image that is missing or cannot be decoded.

    Every image is decoded once, with the same call training uses, so a file that
    would break an epoch halfway is found (and reported) before training starts.
    """
    problems: dict[Path, str] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:  # cv2 releases the GIL while decoding
        for n, (path, reason) in enumerate(zip(paths, pool.map(image_problem, paths)), start=1):
            if reason:
                problems[path] = reason
            if on_checked:
                on_checked(n)
    return problems


def read_crops(paths: Iterable[Path], workers: int = 4, chunk: int = 256,
               fit: tuple[int, int] | None = None) -> Iterator[tuple[Path, np.ndarray | None]]:
    """(path, RGB crop or None) in order, decoded in threads a chunk at a time (memory stays flat).

    `fit` (height, width): each crop is resized to it in the thread that decoded it, so that a chunk of
    huge crops (6000x6000 is 108 MB) never waits whole in memory. With the model's input size and its
    bilinear rule the scores do not change: Preprocess.apply's resize to the same size is a copy.
    """
    paths = list(paths)
    read = read_face_crop if fit is None else partial(_read_fitted, size=fit)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), chunk):
            part = paths[start: start + chunk]
            yield from zip(part, pool.map(read, part))


def _read_fitted(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    import cv2

    crop = read_face_crop(path)
    if crop is None or crop.shape[:2] == tuple(size):
        return crop
    return cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
