"""decord (the reference model's own frame extraction used it), only on the files it reads safely.

It seeks by timestamps and counts frames from the container's index: on an MPEG-TS with B-frames
`get_batch` spun for good, on an MP4 whose edit list hides frames it counted the hidden ones and
never returned, and it picks a video stream of its own. So it gets only MP4/MOV (without a hiding
edit list), Matroska/WebM and AVI, and, when the file has several video streams, a copy holding
just the one streams.choose picked (source.py).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..common.errors import VideoError
from .container import decoder_message
from .frames import Clip, FrameSpec, KeepError, check_length, check_size

SAFE_FORMATS = ("mov", "mp4", "matroska", "webm", "avi")  # FFmpeg demuxer names (a format may have several)


def unsafe(source) -> str | None:
    """Why decord must not read this file, or None."""
    names = set(source.format_name.split(","))
    if source.hidden:
        return "an MP4 edit list hides frames it would count"
    if not names & set(SAFE_FORMATS):
        return f"it can hang on {source.format_name.split(',')[0]} files"
    return None


def read_decord(source, spec: FrameSpec, threads: int, keep: Callable[[np.ndarray], Any]) -> Clip:
    path = source.decoder_path()
    try:
        import decord
    except ImportError as exc:  # no wheel for this platform: OpenCV does the work
        raise VideoError("decord is not installed") from exc
    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads)
        total = len(vr)
        fps = float(vr.get_avg_fps() or 0.0)
        check_length(total)
        indices = spec.resolve(total)
        if not indices:
            raise VideoError("the video has no frames")
        h = w = 0
        frames = []
        for i in indices:  # one frame at a time: a batch holds every frame at full size
            frame = np.ascontiguousarray(vr.get_batch([i]).asnumpy()[0])
            check_size(frame, i)
            h, w = frame.shape[:2]
            frames.append(keep(frame))
            del frame
    except (VideoError, KeepError):  # LimitExceeded among them
        raise
    except Exception as exc:  # decord raises its own DECORDError and RuntimeError
        raise VideoError(decoder_message(exc, path)) from exc
    return Clip(frames, indices, total, fps, w, h, "decord")
