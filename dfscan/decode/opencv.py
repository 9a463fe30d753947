"""OpenCV, reading the stream in order: the decoder of last resort, and the one for streams without
usable timestamps (raw H.264/HEVC, MPEG-PS whose B-frames share stamps)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..common.errors import VideoError
from . import frames as limits
from .frames import Clip, FrameSpec, check_length, check_size


def read_opencv(source, spec: FrameSpec, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
    import cv2

    path = source.decoder_path()
    cap = _open_opencv(path, threads)
    try:
        if not cap.isOpened():
            raise VideoError("OpenCV cannot open it")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if total <= 0 and source.packets:  # a raw stream PyAV counted by its packets, without decoding
            total = source.packets
        elif total <= 0:  # no count in the header (e.g. WebM): count, then start again from the top
            total = _count_frames(cap)
            cap.release()
            cap = _open_opencv(path, threads)
        check_length(total)
        wanted = spec.resolve(total)
        frames, indices, got, size = _grab_sequential(cap, wanted, keep)
    finally:
        cap.release()
    if wanted and got <= wanted[-1]:
        # The container promised more frames than the stream holds: sample what exists.
        return _read_opencv_exact(path, spec, got, threads, keep)
    if not frames:
        raise VideoError("the video has no decodable frames")
    return Clip(frames, indices, max(total, got), fps, *size, "opencv")


def _read_opencv_exact(path: str, spec: FrameSpec, total: int, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
    import cv2

    cap = _open_opencv(path, threads)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames, indices, _, size = _grab_sequential(cap, spec.resolve(total), keep)
    finally:
        cap.release()
    if not frames:
        raise VideoError("the video has no decodable frames")
    clip = Clip(frames, indices, total, fps, *size, "opencv")
    clip.notes.append(f"stream holds {total} frames, fewer than its header says")
    return clip


def _open_opencv(path: str, threads: int):
    import cv2

    if threads:
        cap = cv2.VideoCapture(path, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, threads])
        if cap.isOpened():
            return cap
        cap.release()  # a backend that takes no thread count may still read the file
    return cv2.VideoCapture(path)


def _count_frames(cap) -> int:
    n = 0
    while n <= limits.MAX_FRAMES and cap.grab():
        n += 1
    return n


def _grab_sequential(cap, indices: Sequence[int], keep: Callable[[np.ndarray], Any]
                     ) -> tuple[list[Any], tuple[int, ...], int, tuple[int, int]]:
    """Walk the stream once, keeping the wanted frames; returns them, their indices, frames seen, (width, height)."""
    import cv2

    wanted = set(indices)
    frames, kept, size = [], [], (0, 0)
    last = max(indices) if indices else -1
    pos = 0
    while pos <= last:
        if not cap.grab():
            break
        if pos in wanted:
            ok, frame = cap.retrieve()
            if ok and frame is not None:
                check_size(frame, pos)
                rgb = _to_rgb(frame, cv2)
                del frame
                size = (rgb.shape[1], rgb.shape[0])
                frames.append(keep(rgb))
                kept.append(pos)
        pos += 1
    return frames, tuple(kept), pos, size


def _to_rgb(frame: np.ndarray, cv2) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
